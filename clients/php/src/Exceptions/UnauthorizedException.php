<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 401: no token, or a token the daemon does not know (revoked, mistyped). */
class UnauthorizedException extends StaskException
{
}
