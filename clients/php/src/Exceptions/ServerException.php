<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** Any other error status (5xx): the daemon failed to do it. */
class ServerException extends StaskException
{
}
