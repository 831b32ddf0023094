<?php

declare(strict_types=1);

namespace Stask\Exceptions;

/** 409: the state forbids it (cancel a finished task, download an unfinished one, an inactive worker). */
class ConflictException extends StaskException
{
}
