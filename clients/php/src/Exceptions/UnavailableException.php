<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/**
 * The daemon could not be reached (connection refused, DNS, TLS, timeout) or answered
 * 502/503/504. The message names the URL tried; the transport error is the previous exception
 * when there was one.
 */
class UnavailableException extends StaskException
{
}
