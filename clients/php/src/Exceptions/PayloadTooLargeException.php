<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 413: the body or upload is larger than the daemon accepts. */
class PayloadTooLargeException extends StaskException
{
}
