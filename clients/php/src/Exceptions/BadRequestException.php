<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 400: the request was malformed (bad JSON, an invalid task id, a repeated query parameter). */
class BadRequestException extends StaskException
{
}
