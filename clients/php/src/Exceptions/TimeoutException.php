<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 408 from the daemon, or a wait() that ran out of time before the task finished. */
class TimeoutException extends StaskException
{
}
