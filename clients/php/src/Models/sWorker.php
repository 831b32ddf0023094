<?php

declare(strict_types=1);

namespace Stask\Models;

use Stask\Facades\sTask;
use Stask\Support\Collection;
use Stask\Worker;

/**
 * The seed's `sWorker` query entry points over the API: `byScope()`, `active()`,
 * `ordered()`, `where('identifier', ...)`, then `get()` or `first()`. Each builds a
 * {@see WorkerQuery}; workers come back by position, as `ordered()` asks.
 */
class sWorker extends Worker
{
    /** Only this scope. */
    public static function byScope(string $scope): WorkerQuery
    {
        return (new WorkerQuery())->byScope($scope);
    }

    /** Only active workers. */
    public static function active(): WorkerQuery
    {
        return (new WorkerQuery())->active();
    }

    /** By position (the API's order). */
    public static function ordered(): WorkerQuery
    {
        return new WorkerQuery();
    }

    /** Only workers whose `$field` equals `$value`. */
    public static function where(string $field, mixed $value): WorkerQuery
    {
        return (new WorkerQuery())->where($field, $value);
    }

    /** All workers. @return Collection<Worker> */
    public static function all(): Collection
    {
        return (new WorkerQuery())->get();
    }
}
