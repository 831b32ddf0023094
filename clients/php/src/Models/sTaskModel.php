<?php

declare(strict_types=1);

namespace Stask\Models;

use Stask\Exceptions\InvalidException;
use Stask\Exceptions\NotFoundException;
use Stask\Facades\sTask;
use Stask\Task;

/**
 * The seed's `sTaskModel` entry points over the API: `find($id)` and `create([...])` (the
 * columns the seed writes: `identifier`, `action`, `status`, `priority`, `start_at`,
 * `meta`, `started_by`, `max_attempts`). Tasks are rows the daemon owns, so a task is created
 * through the API, never by writing the row; `status` may only be 10 (pending).
 */
class sTaskModel extends Task
{
    /** The task, or `null` when there is none with this id (as Eloquent's `find`). */
    public static function find(int $id): ?Task
    {
        try {
            return sTask::getClient()->task($id);
        } catch (NotFoundException) {
            return null;
        }
    }

    /** The task, or a NotFoundException. */
    public static function findOrFail(int $id): Task
    {
        return sTask::getClient()->task($id);
    }

    /**
     * Creates a task from the seed's column values.
     *
     * @param array<string, mixed> $attributes
     */
    public static function create(array $attributes): Task
    {
        foreach (['identifier', 'action'] as $required) {
            if (!is_string($attributes[$required] ?? null) || $attributes[$required] === '') {
                throw new InvalidException("$required is required", 0, null, null, null);
            }
        }
        $status = $attributes['status'] ?? Task::PENDING;
        if ((int) $status !== Task::PENDING) {
            throw new InvalidException("a new task is pending (status 10); the daemon sets every later status, got $status", 0, null, null, null);
        }
        return sTask::getClient()->create(
            identifier: $attributes['identifier'],
            action: $attributes['action'],
            data: is_array($attributes['meta'] ?? null) ? $attributes['meta'] : [],
            priority: (string) ($attributes['priority'] ?? 'normal'),
            userId: isset($attributes['started_by']) ? (int) $attributes['started_by'] : null,
            startAt: $attributes['start_at'] ?? null,
            maxAttempts: isset($attributes['max_attempts']) ? (int) $attributes['max_attempts'] : null,
        );
    }
}
