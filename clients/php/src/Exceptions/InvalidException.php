<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 422: a value is invalid (priority, start_at, max_attempts, a query parameter out of range). */
class InvalidException extends StaskException
{
}
