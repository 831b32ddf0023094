<?php

declare(strict_types=1);

namespace Stask;

use Stask\Support\Timestamp;

/**
 * A task as the seed's `sTaskModel` showed it: the same property names (`status` is the
 * numeric code 10-50, `status_text` its label, `meta` the task data, `started_by` the CMS
 * user), the same checks, and `fresh()`. Every other field of the API's task (`processed`,
 * `total`, `last_error`, `download_url`, `duration_ms`, ...) reads as a property too.
 *
 * @property-read int|null $processed
 * @property-read int|null $total
 * @property-read string|null $last_error
 * @property-read string|null $download_url
 * @property-read string|null $result_file
 */
class Task implements \JsonSerializable
{
    public const PENDING = 10;
    public const PREPARING = 15;
    public const RUNNING = 20;
    public const COMPLETED = 30;
    public const FAILED = 40;
    public const CANCELLED = 50;

    /** The seed's labels of the status codes. */
    public const STATUS_TEXT = [
        self::PENDING => 'Pending',
        self::PREPARING => 'Preparing',
        self::RUNNING => 'Running',
        self::COMPLETED => 'Completed',
        self::FAILED => 'Failed',
        self::CANCELLED => 'Cancelled',
    ];

    public int $id;
    public string $identifier;
    public string $action;
    /** The numeric code: 10 pending, 15 preparing, 20 running, 30 completed, 40 failed, 50 cancelled. */
    public int $status;
    /** The status as a word (`Completed`). */
    public string $status_text;
    /** The status name as the API writes it (`completed`). */
    public string $status_name;
    public string $message;
    /** 0-100. */
    public int $progress;
    /** Time left as the API writes it (`2m 30s`), `null` when unknown. */
    public ?string $eta;
    /** The result text (a file name, a JSON summary). */
    public ?string $result;
    /** The task data given at creation. @var array<string, mixed> */
    public array $meta;
    /** `low`, `normal` or `high`. */
    public string $priority;
    public int $attempts;
    public int $max_attempts;
    /** The CMS user id given at creation (`userId:`), `null` when none. */
    public ?int $started_by;
    public ?Timestamp $start_at;
    public ?Timestamp $finished_at;
    public Timestamp $created_at;
    public ?Timestamp $started_at;
    public Timestamp $updated_at;

    /** Whether the create that returned it found its unique key held (nothing was created). */
    public bool $duplicate = false;

    /** @var array<string, mixed> Every field of the API's answer. */
    private array $attributes = [];

    /** @var list<array<string, mixed>> The log lines of the last detail read. */
    private array $log = [];

    /**
     * @param array<string, mixed> $attributes A task object of the API.
     * @param Client|null $client Used by `fresh()`.
     * @param list<array<string, mixed>> $log Its log lines, when the answer had them.
     */
    public function __construct(array $attributes, private ?Client $client = null, array $log = [])
    {
        $this->fill($attributes);
        $this->log = $log;
    }

    /** Pending: waiting for its start time, a free slot or an active worker. */
    public function isPending(): bool
    {
        return $this->status === self::PENDING;
    }

    /** Claimed by a host (preparing) or executing. */
    public function isRunning(): bool
    {
        return $this->status === self::PREPARING || $this->status === self::RUNNING;
    }

    /** Completed, failed or cancelled: nothing more will happen (unless it is retried). */
    public function isFinished(): bool
    {
        return $this->status >= self::COMPLETED;
    }

    /** Completed successfully. */
    public function isCompleted(): bool
    {
        return $this->status === self::COMPLETED;
    }

    /** Failed (no attempts left, or a permanent error). */
    public function isFailed(): bool
    {
        return $this->status === self::FAILED;
    }

    /** Cancelled. */
    public function isCancelled(): bool
    {
        return $this->status === self::CANCELLED;
    }

    /**
     * Reads the task again from the daemon and returns it.
     *
     * Unlike Eloquent's `fresh()` this updates this object in place (and returns it): the
     * seed's own sample loops on `$task->fresh()->isFinished()` and then reads
     * `$task->status`, which only works when `$task` itself is the refreshed one.
     */
    public function fresh(): static
    {
        $this->fill($this->client()->taskData($this->id, $this->log));
        return $this;
    }

    /** Same as `fresh()` (Eloquent's name for refreshing in place). */
    public function refresh(): static
    {
        return $this->fresh();
    }

    /** The task's log lines from the latest read (`[{attempt, level, line, at}]`). @return list<array<string, mixed>> */
    public function log(): array
    {
        return $this->log;
    }

    /** Any other field of the API's task. */
    public function __get(string $name): mixed
    {
        return $this->attributes[$name] ?? null;
    }

    public function __isset(string $name): bool
    {
        return isset($this->attributes[$name]);
    }

    /** @return array<string, mixed> The API's fields. */
    public function toArray(): array
    {
        return $this->attributes;
    }

    public function jsonSerialize(): array
    {
        return $this->attributes;
    }

    /** @param array<string, mixed> $a */
    protected function fill(array $a): void
    {
        $this->attributes = $a;
        $this->id = (int) $a['id'];
        $this->identifier = (string) $a['identifier'];
        $this->action = (string) $a['action'];
        $this->status = (int) ($a['status_code'] ?? self::PENDING);
        $this->status_text = self::STATUS_TEXT[$this->status] ?? ucfirst((string) ($a['status'] ?? ''));
        $this->status_name = (string) ($a['status'] ?? '');
        $this->message = (string) ($a['message'] ?? '');
        $this->progress = (int) ($a['progress'] ?? 0);
        $this->eta = $a['eta'] ?? null;
        $this->result = $a['result'] ?? null;
        $this->meta = is_array($a['meta'] ?? null) ? $a['meta'] : [];
        $this->priority = (string) ($a['priority'] ?? 'normal');
        $this->attempts = (int) ($a['attempts'] ?? 0);
        $this->max_attempts = (int) ($a['max_attempts'] ?? 0);
        $this->started_by = isset($a['started_by']) ? (int) $a['started_by'] : null;
        $this->start_at = Timestamp::parse($a['start_at'] ?? null);
        $this->finished_at = Timestamp::parse($a['finished_at'] ?? null);
        $this->created_at = Timestamp::parse($a['created_at'] ?? null) ?? new Timestamp('now');
        $this->started_at = Timestamp::parse($a['started_at'] ?? null);
        $this->updated_at = Timestamp::parse($a['updated_at'] ?? null) ?? $this->created_at;
    }

    protected function client(): Client
    {
        return $this->client ??= Facades\sTask::getClient();
    }
}
