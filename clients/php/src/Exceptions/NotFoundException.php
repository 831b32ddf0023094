<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 404: no such task, worker or action (the message lists the valid ones). */
class NotFoundException extends StaskException
{
}
