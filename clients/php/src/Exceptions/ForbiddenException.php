<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 403: the request lacks a permission (a session without its CSRF token). */
class ForbiddenException extends StaskException
{
}
