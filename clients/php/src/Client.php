<?php

declare(strict_types=1);

namespace Stask;

use Stask\Exceptions\ConflictException;
use Stask\Exceptions\InvalidException;
use Stask\Exceptions\StaskException;
use Stask\Exceptions\TimeoutException;
use Stask\Exceptions\UnavailableException;
use Stask\Http\Transport;
use Stask\Support\Collection;

/**
 * The whole sTask REST API (`/stask/...`) for PHP, over ext-curl.
 *
 * Every method is one API call (named after it: `task`, `progress`, `cancel`, `workers`, ...)
 * and the seed's facade names are here too (`getStats`, `getWorkers`, `getPendingTasks`,
 * ...), so `Stask\Facades\sTask` only forwards. Errors are exceptions of the
 * {@see StaskException} family.
 */
class Client
{
    /** Where a daemon listens when nothing else is configured (`stask serve`'s default). */
    public const DEFAULT_URL = 'http://127.0.0.1:7878';

    private Transport $http;

    /**
     * @param string|null $url The daemon's base URL; `STASK_URL`, then `http://127.0.0.1:7878`.
     * @param string|null $token An API token (`stask token create --name site`); `STASK_TOKEN`.
     * @param float $timeout Seconds a request may take.
     * @param float $connectTimeout Seconds to connect.
     * @param float $pollInterval Seconds between two reads in `wait()`.
     * @param string|null $binary The `stask` executable, for a cron installation's
     *   `processPendingTasks` (`stask process`). Unset: the daemon installation. Only
     *   `fromConfig()` falls back to `STASK_BIN`: a client built here is explicit about it.
     * @param string|null $home The home folder `$binary` runs in (`--home`); `fromConfig()`
     *   falls back to `STASK_HOME`.
     */
    public function __construct(
        ?string $url = null,
        ?string $token = null,
        private readonly float $timeout = 30.0,
        private readonly float $connectTimeout = 5.0,
        private readonly float $pollInterval = 0.2,
        private readonly ?string $binary = null,
        private readonly ?string $home = null,
    ) {
        $url = $url ?? self::env('STASK_URL') ?? self::DEFAULT_URL;
        $this->http = new Transport(rtrim($url, '/'), $token ?? self::env('STASK_TOKEN'), $timeout, $connectTimeout);
    }

    /**
     * A client from a configuration array (the keys of `config/stask.php`: `url`, `token`,
     * `timeout`, `connect_timeout`, `poll_interval`, `binary`, `home`); missing keys fall
     * back to the environment, then the defaults.
     *
     * @param array<string, mixed> $config
     */
    public static function fromConfig(array $config): self
    {
        $blank = fn ($v) => $v === null || $v === '' ? null : $v;
        return new self(
            url: $blank($config['url'] ?? null),
            token: $blank($config['token'] ?? null),
            timeout: (float) ($config['timeout'] ?? 30.0),
            connectTimeout: (float) ($config['connect_timeout'] ?? 5.0),
            pollInterval: (float) ($config['poll_interval'] ?? 0.2),
            binary: $blank($config['binary'] ?? null) ?? self::env('STASK_BIN'),
            home: $blank($config['home'] ?? null) ?? self::env('STASK_HOME'),
        );
    }

    /** The base URL this client talks to. */
    public function url(): string
    {
        return $this->http->baseUrl();
    }

    // ---- tasks -------------------------------------------------------------------------

    /**
     * Creates a task (`POST /stask/workers/{identifier}/tasks/{action}`) and returns it.
     *
     * @param array<string, mixed> $data The task data (the worker's input; `meta` of the task).
     * @param string $priority `low`, `normal` or `high`.
     * @param int|null $userId The CMS user it is started for (`started_by`).
     * @param \DateTimeInterface|string|int|null $startAt Not before this time (a date, RFC 3339 or UNIX seconds).
     * @param int|null $maxAttempts Attempts allowed (1-100; the daemon's default when null).
     * @param array<string, mixed> $options More control keys of the create body, as later
     *   versions of the API add them; sent as they are, except `depends_on`: the tasks this
     *   one waits for (ids or {@see Task} objects, or one of them), and `on_parent_failure`:
     *   `cancel` (the default: a failed or cancelled one cancels this task) or `run` (it runs
     *   once every one finished).
     * @param string|null $uniqueKey While a task with this key is pending or running (or for
     *   `$uniqueFor` seconds after its creation), another create with it creates nothing and
     *   returns that task, with `duplicate` true.
     * @param int|null $uniqueFor Seconds the key is held, whatever the task's status.
     */
    public function create(
        string $identifier,
        string $action,
        array $data = [],
        string $priority = 'normal',
        ?int $userId = null,
        \DateTimeInterface|string|int|null $startAt = null,
        ?int $maxAttempts = null,
        array $options = [],
        ?string $uniqueKey = null,
        ?int $uniqueFor = null,
    ): Task {
        foreach (['priority', 'start_at', 'max_attempts', 'started_by', 'unique_key', 'unique_for', 'depends_on', 'on_parent_failure'] as $reserved) {
            if (array_key_exists($reserved, $data)) {
                // The API takes these keys out of the body; one in the data would silently
                // become an option instead of data.
                throw new InvalidException("data must not contain the control key '$reserved': pass it as its own argument", 0, null, null, null);
            }
        }
        if (array_key_exists('depends_on', $options)) {
            $options['depends_on'] = self::taskIds($options['depends_on']);
        }
        $body = $data + $options + ['priority' => $priority];
        if ($userId !== null) {
            $body['started_by'] = $userId;
        }
        if ($startAt !== null) {
            $body['start_at'] = $startAt instanceof \DateTimeInterface ? $startAt->format(\DateTimeInterface::RFC3339) : $startAt;
        }
        if ($maxAttempts !== null) {
            $body['max_attempts'] = $maxAttempts;
        }
        if ($uniqueKey !== null) {
            $body['unique_key'] = $uniqueKey;
        }
        if ($uniqueFor !== null) {
            $body['unique_for'] = $uniqueFor;
        }
        $created = $this->http->json('POST', '/stask/workers/' . rawurlencode($identifier) . '/tasks/' . rawurlencode($action), body: $body);
        // With a held unique key nothing is created: the task returned is the one holding it
        // (`$task->duplicate` is true).
        $task = $this->task((int) $created['id']);
        $task->duplicate = (bool) ($created['duplicate'] ?? false);
        return $task;
    }

    /**
     * Task ids from ids, {@see Task} objects, or a list of them (a create's `depends_on`).
     *
     * @param Task|int|array<int, Task|int> $tasks
     * @return list<int>
     */
    private static function taskIds(Task|int|array $tasks): array
    {
        $ids = [];
        foreach (is_array($tasks) ? $tasks : [$tasks] as $task) {
            $ids[] = $task instanceof Task ? (int) $task->id : $task;
        }
        return $ids;
    }

    /** One task (`GET /stask/tasks/{id}`), with its log (`$task->log()`). */
    public function task(int $id): Task
    {
        $log = [];
        $data = $this->taskData($id, $log);
        return new Task($data, $this, $log);
    }

    /**
     * The task object of `GET /stask/tasks/{id}`; its log lines into `$log`.
     *
     * @param list<array<string, mixed>> $log
     * @return array<string, mixed>
     * @internal Used by Task::fresh().
     */
    public function taskData(int $id, array &$log = []): array
    {
        $answer = $this->http->json('GET', "/stask/tasks/$id");
        $log = $answer['log'] ?? [];
        return $answer['task'];
    }

    /**
     * Progress (`GET /stask/tasks/{id}/progress`): the seed's keys `id, status, progress,
     * message, eta` plus `processed, total, attempts, log_lines`.
     *
     * @return array<string, mixed>
     */
    public function progress(int $id): array
    {
        return $this->http->json('GET', "/stask/tasks/$id/progress");
    }

    /**
     * Waits until the task is finished (completed, failed or cancelled) and returns it.
     *
     * It polls `GET /stask/tasks/{id}/progress` every `pollInterval` seconds (0.2 by
     * default): plain requests work through every proxy and PHP-FPM setup, where a held-open
     * event stream may not. `$onProgress` gets each progress answer that differs from the
     * previous one (progress, message or status changed).
     *
     * @param float $timeout Seconds to wait at most.
     * @param callable(array<string, mixed>): void|null $onProgress
     * @throws TimeoutException when the task is not finished in time (the task keeps running).
     */
    public function wait(int $id, float $timeout = 60.0, ?callable $onProgress = null): Task
    {
        $deadline = microtime(true) + $timeout;
        $last = null;
        while (true) {
            $progress = $this->progress($id);
            $seen = [$progress['status'], $progress['progress'], $progress['message']];
            if ($onProgress !== null && $seen !== $last) {
                $onProgress($progress);
            }
            $last = $seen;
            if (in_array($progress['status'], ['completed', 'failed', 'cancelled'], true)) {
                return $this->task($id);
            }
            if (microtime(true) >= $deadline) {
                throw new TimeoutException(
                    "task $id is still {$progress['status']} ({$progress['progress']}%) after {$timeout}s",
                    0,
                    null,
                    null,
                    $this->http->url("/stask/tasks/$id/progress"),
                );
            }
            usleep((int) round(min($this->pollInterval, max(0.0, $deadline - microtime(true))) * 1e6));
        }
    }

    /**
     * Cancels a task: a pending one at once, a running one at its next check.
     *
     * @return array<string, mixed> `{success, id, status, message}`
     */
    public function cancel(int $id): array
    {
        return $this->http->json('POST', "/stask/tasks/$id/cancel");
    }

    /**
     * Queues a failed or cancelled task again, with fresh attempts.
     *
     * @return array<string, mixed> `{success, id, status, message}`
     */
    public function retry(int $id): array
    {
        return $this->http->json('POST', "/stask/tasks/$id/retry");
    }

    /**
     * Deletes a finished task with its files.
     *
     * @return array<string, mixed> `{success, id, status, message}`
     */
    public function delete(int $id): array
    {
        return $this->http->json('DELETE', "/stask/tasks/$id");
    }

    /**
     * Downloads a completed task's result file to `$path`, streamed (never whole in memory).
     * It is written to a temporary file beside `$path` and renamed when complete, so `$path`
     * never holds a partial file or an error page. Returns the bytes written.
     */
    public function download(int $id, string $path): int
    {
        $dir = dirname($path);
        $partial = @tempnam($dir, '.stask-download-');
        if ($partial === false) {
            throw new StaskException("cannot write a file in $dir", 0, null, null, null);
        }
        $file = fopen($partial, 'wb');
        try {
            $status = $this->http->download("/stask/tasks/$id/download", $file);
        } catch (\Throwable $e) {
            fclose($file);
            @unlink($partial);
            throw $e;
        }
        fclose($file);
        if ($status !== 200) {
            // The error body (JSON) went into the file: it is the exception's message.
            $raw = (string) file_get_contents($partial);
            @unlink($partial);
            throw $this->http->error($status, $raw, 'GET', "/stask/tasks/$id/download");
        }
        if (!rename($partial, $path)) {
            @unlink($partial);
            throw new StaskException("cannot move the download to $path", 0, null, null, null);
        }
        return (int) filesize($path);
    }

    /**
     * Uploads a file for an import task (streamed by curl from disk); pass the answer's `path`
     * as the task's `file`.
     *
     * @return array<string, mixed> `{success, path, name, size}`
     */
    public function upload(string $path): array
    {
        if (!is_file($path) || !is_readable($path)) {
            throw new InvalidException("no readable file at $path", 0, null, null, null);
        }
        return $this->http->upload('/stask/uploads', $path);
    }

    /**
     * A page of tasks, newest first (`GET /stask/tasks`).
     *
     * @param array<string, scalar|null> $filters `status` (names or codes, comma-separated,
     *   or `incomplete` / `finished`), `identifier`, `action`, `priority`, `started_by`,
     *   `from`, `to` (times), `q` (text).
     * @return array{tasks: Collection<Task>, total: int, page: int, per_page: int}
     */
    public function tasks(array $filters = [], int $page = 1, int $perPage = 50): array
    {
        $answer = $this->http->json('GET', '/stask/tasks', $filters + ['page' => $page, 'per_page' => $perPage]);
        return [
            'tasks' => $this->taskList($answer['tasks']),
            'total' => (int) $answer['total'],
            'page' => (int) $answer['page'],
            'per_page' => (int) $answer['per_page'],
        ];
    }

    /**
     * Pending tasks in the order they will be claimed (`GET /stask/tasks/pending`).
     *
     * @return Collection<Task>
     */
    public function pendingTasks(int $limit = 10): Collection
    {
        return $this->taskList($this->http->json('GET', '/stask/tasks/pending', ['limit' => $limit])['tasks']);
    }

    /** The seed's name for {@see pendingTasks()}. @return Collection<Task> */
    public function getPendingTasks(int $limit = 10): Collection
    {
        return $this->pendingTasks($limit);
    }

    /**
     * Task counts (`GET /stask/stats`): `pending, preparing, running, completed, failed,
     * cancelled, total`.
     *
     * @return array<string, int>
     */
    public function stats(): array
    {
        $answer = $this->http->json('GET', '/stask/stats');
        unset($answer['success']);
        return array_map('intval', $answer);
    }

    /** The seed's name for {@see stats()}. @return array<string, int> */
    public function getStats(): array
    {
        return $this->stats();
    }

    /** Deletes finished tasks older than `$days` days with their files; returns how many. */
    public function cleanOldTasks(int $days = 30): int
    {
        return (int) $this->http->json('POST', '/stask/tasks/clean', body: ['days' => $days])['deleted'];
    }

    /**
     * Runs pending tasks, as the seed's `processPendingTasks` did; returns how many were
     * processed (finished: completed, failed or cancelled).
     *
     * - Cron installation (`binary` configured, `STASK_BIN`): runs `stask process
     *   [--batch-size N]` in `home` — the same one pass cron runs — and returns the count it
     *   reports. It fails with a ConflictException while a daemon holds that home.
     * - Daemon installation (the default): the daemon runs tasks by itself, within
     *   milliseconds of their due time, so this call runs nothing itself. It takes the tasks
     *   in hand now — running ones first, then pending ones that are due and whose worker is
     *   active, in claim order; at most `$batchSize` — waits until the daemon has finished
     *   them (at most `$timeout` seconds in all) and returns how many finished. Tasks
     *   scheduled for later or of inactive workers are not waited for; a task not finished
     *   in time is not counted.
     *
     * @param int|null $batchSize At most this many tasks (null: all; the daemon
     *   installation looks at the first 500).
     */
    public function processPendingTasks(?int $batchSize = null, float $timeout = 60.0): int
    {
        if ($batchSize !== null && $batchSize < 1) {
            throw new InvalidException("batchSize must be at least 1, got $batchSize", 0, null, null, null);
        }
        return $this->binary !== null ? $this->processPass($batchSize) : $this->awaitDaemon($batchSize ?? 500, $timeout);
    }

    // ---- workers -----------------------------------------------------------------------

    /**
     * Workers by position (`GET /stask/workers`).
     *
     * @param bool|null $active Only active (true) or inactive (false) workers; null: all.
     * @return Collection<Worker>
     */
    public function workers(?bool $active = null, ?string $scope = null): Collection
    {
        $answer = $this->http->json('GET', '/stask/workers', ['active' => $active, 'scope' => $scope]);
        return new Collection(array_map(fn ($w) => new Worker($w, $this), $answer['workers']));
    }

    /**
     * The seed's `getWorkers(activeOnly:)`: all workers, or only the active ones.
     *
     * @return Collection<Worker>
     */
    public function getWorkers(bool $activeOnly = true, ?string $scope = null): Collection
    {
        return $this->workers($activeOnly ? true : null, $scope);
    }

    /**
     * The whole `GET /stask/workers` answer: `workers`, `plugin_files` (every library file
     * and its load result) and `loaded_copies`.
     *
     * @return array<string, mixed>
     */
    public function workersReport(): array
    {
        return $this->http->json('GET', '/stask/workers');
    }

    /** One worker. */
    public function worker(string $identifier): Worker
    {
        return new Worker($this->http->json('GET', '/stask/workers/' . rawurlencode($identifier))['worker'], $this);
    }

    /** Activates a worker (its pending tasks run again); returns it. */
    public function activateWorker(string $identifier): Worker
    {
        return new Worker($this->http->json('POST', '/stask/workers/' . rawurlencode($identifier) . '/activate')['worker'], $this);
    }

    /** Deactivates a worker (its tasks stay pending, across restarts); returns it. */
    public function deactivateWorker(string $identifier): Worker
    {
        return new Worker($this->http->json('POST', '/stask/workers/' . rawurlencode($identifier) . '/deactivate')['worker'], $this);
    }

    /** Pauses a worker's queue: it still accepts tasks, which wait until it is resumed. */
    public function pauseWorker(string $identifier): Worker
    {
        return new Worker($this->http->json('POST', '/stask/workers/' . rawurlencode($identifier) . '/pause')['worker'], $this);
    }

    /** Resumes a paused worker's queue: its waiting tasks run in their order. */
    public function resumeWorker(string $identifier): Worker
    {
        return new Worker($this->http->json('POST', '/stask/workers/' . rawurlencode($identifier) . '/resume')['worker'], $this);
    }

    /**
     * Creates many tasks in one transaction under one batch (`POST /stask/batches`): all or
     * nothing (a task the API would refuse alone refuses the batch with an
     * {@see InvalidException}, whose message starts with `tasks[N]: `).
     *
     * @param list<array<string, mixed>> $tasks Each `['identifier' => ..., 'action' => ...,
     *   'data' => [...]]` plus a single create's options (`priority`, `start_at`,
     *   `max_attempts`, `started_by`, `unique_key`, `unique_for`, `depends_on`,
     *   `on_parent_failure`).
     * @param array<string, mixed>|null $onComplete A task (`identifier`, `action`, `data`)
     *   that runs once after every task of the batch finished, whatever their ends; its data
     *   then holds `batch`: `id`, `total`, `completed`, `failed`, `cancelled`, `task_ids`.
     * @param string|null $name A name for people.
     * @return array{id: int, task_ids: list<int>, on_complete_task_id: int|null, duplicates: int}
     */
    public function createBatch(array $tasks, ?array $onComplete = null, ?string $name = null): array
    {
        foreach ($tasks as $i => $task) {
            if (array_key_exists('depends_on', $task)) {
                $tasks[$i]['depends_on'] = self::taskIds($task['depends_on']);
            }
        }
        $body = ['tasks' => array_values($tasks)];
        if ($onComplete !== null) {
            $body['on_complete'] = $onComplete;
        }
        if ($name !== null) {
            $body['name'] = $name;
        }
        $created = $this->http->json('POST', '/stask/batches', body: $body);
        return [
            'id' => (int) $created['id'],
            'task_ids' => array_map('intval', $created['task_ids']),
            'on_complete_task_id' => isset($created['on_complete_task_id']) ? (int) $created['on_complete_task_id'] : null,
            'duplicates' => (int) ($created['duplicates'] ?? 0),
        ];
    }

    /**
     * One batch (`GET /stask/batches/{id}`): `counts` per status, `finished`, `progress`
     * (0-100), `eta_seconds`, `done`, `on_complete_task_id`, `cancelled_at`.
     *
     * @return array<string, mixed>
     */
    public function batch(int $id): array
    {
        return $this->http->json('GET', '/stask/batches/' . $id)['batch'];
    }

    /**
     * Recent batches, newest first (`GET /stask/batches`).
     *
     * @return array{batches: list<array<string, mixed>>, total: int, page: int, per_page: int}
     */
    public function batches(int $page = 1, int $perPage = 50): array
    {
        $answer = $this->http->json('GET', '/stask/batches', ['page' => $page, 'per_page' => $perPage]);
        unset($answer['success']);
        return $answer;
    }

    /**
     * Cancels every unfinished task of a batch (`POST /stask/batches/{id}/cancel`): pending
     * ones at once, running ones are asked to stop; its on_complete task still runs.
     *
     * @return array{cancelled: int, requested: int, batch: array<string, mixed>}
     */
    public function cancelBatch(int $id): array
    {
        $answer = $this->http->json('POST', '/stask/batches/' . $id . '/cancel');
        unset($answer['success']);
        return $answer;
    }

    /**
     * Every schedule (`GET /stask/schedules`), by name.
     *
     * @return list<array<string, mixed>>
     */
    public function schedules(): array
    {
        return $this->http->json('GET', '/stask/schedules')['schedules'];
    }

    /**
     * One schedule, with its last and next run times.
     *
     * @return array<string, mixed>
     */
    public function schedule(int $id): array
    {
        return $this->http->json('GET', '/stask/schedules/' . $id)['schedule'];
    }

    /**
     * Creates a recurring task: `cron` takes 5 fields, 6 with seconds first, or
     * `@hourly`/`@daily`/`@weekly`/`@monthly`, in `timezone` (an IANA name, default UTC).
     *
     * @param array<string, mixed> $schedule name, identifier, action, cron, and optionally
     *   timezone, data, priority, max_attempts, unique_key, enabled, catch_up.
     * @return array<string, mixed> The stored schedule.
     */
    public function createSchedule(array $schedule): array
    {
        return $this->http->json('POST', '/stask/schedules', body: $schedule)['schedule'];
    }

    /**
     * Rewrites a schedule (the same fields as {@see createSchedule()}).
     *
     * @param array<string, mixed> $schedule
     * @return array<string, mixed>
     */
    public function updateSchedule(int $id, array $schedule): array
    {
        return $this->http->json('PUT', '/stask/schedules/' . $id, body: $schedule)['schedule'];
    }

    /** Enables a schedule; returns it. @return array<string, mixed> */
    public function enableSchedule(int $id): array
    {
        return $this->http->json('POST', '/stask/schedules/' . $id . '/enable')['schedule'];
    }

    /** Disables a schedule (it stops firing); returns it. @return array<string, mixed> */
    public function disableSchedule(int $id): array
    {
        return $this->http->json('POST', '/stask/schedules/' . $id . '/disable')['schedule'];
    }

    /** Deletes a schedule (the tasks it created stay). */
    public function deleteSchedule(int $id): void
    {
        $this->http->json('DELETE', '/stask/schedules/' . $id);
    }

    /**
     * A worker's settings and its plugin's defaults.
     *
     * @return array{settings: array<string, mixed>, default_settings: array<string, mixed>}
     */
    public function workerSettings(string $identifier): array
    {
        $answer = $this->http->json('GET', '/stask/workers/' . rawurlencode($identifier) . '/settings');
        return ['settings' => $answer['settings'], 'default_settings' => $answer['default_settings']];
    }

    /**
     * Replaces a worker's settings (the whole object; declared keys keep their type); the
     * next task sees them. Returns the settings saved.
     *
     * @param array<string, mixed> $settings
     * @return array{settings: array<string, mixed>, default_settings: array<string, mixed>}
     */
    public function updateWorkerSettings(string $identifier, array $settings): array
    {
        $answer = $this->http->json('PUT', '/stask/workers/' . rawurlencode($identifier) . '/settings', body: $settings);
        return ['settings' => $answer['settings'], 'default_settings' => $answer['default_settings']];
    }

    /**
     * Loads new and changed libraries in plugins.d/ and returns the workers they registered
     * (the seed's `discoverWorkers`). `scanReport()` has the outcome of every file.
     *
     * @return Collection<Worker>
     */
    public function discoverWorkers(): Collection
    {
        return $this->loadedWorkers($this->http->json('POST', '/stask/workers/discover')['files']);
    }

    /**
     * Discovers, then rewrites the row of every worker in service from its library (title,
     * scope, actions, defaults); returns the workers so updated (the seed's
     * `rescanWorkers`): every loaded one.
     *
     * @return Collection<Worker>
     */
    public function rescanWorkers(): Collection
    {
        $this->http->json('POST', '/stask/workers/rescan');
        return $this->workers()->filter(fn (Worker $w) => $w->isLoaded());
    }

    /**
     * The raw answer of discover (or rescan): one `{file, outcome, identifier, version,
     * error}` per library file, `outcome` being `loaded`, `unchanged` or `refused`.
     *
     * @return list<array<string, mixed>>
     */
    public function scanReport(bool $rescan = false): array
    {
        return $this->http->json('POST', $rescan ? '/stask/workers/rescan' : '/stask/workers/discover')['files'];
    }

    /** Deletes the rows of workers whose library is gone (their task history stays); returns how many. */
    public function cleanOrphanedWorkers(): int
    {
        return (int) $this->http->json('POST', '/stask/workers/clean-orphaned')['deleted'];
    }

    // ---- performance, cache, system -----------------------------------------------------

    /**
     * `GET /stask/performance/summary`: the seed's `period`, `tasks`, `performance` plus
     * percentiles, wait, throughput and common errors.
     *
     * @return array<string, mixed>
     */
    public function performanceSummary(int $hours = 24): array
    {
        return $this->withoutSuccess($this->http->json('GET', '/stask/performance/summary', ['hours' => $hours]));
    }

    /**
     * `GET /stask/performance/workers`: statistics per worker identifier.
     *
     * @return array<string, array<string, mixed>>
     */
    public function performanceWorkers(int $hours = 24): array
    {
        return $this->http->json('GET', '/stask/performance/workers', ['hours' => $hours])['workers'];
    }

    /**
     * `GET /stask/performance/alerts`: `[{type, severity, message, value, threshold}]`.
     *
     * @return list<array<string, mixed>>
     */
    public function performanceAlerts(): array
    {
        return $this->http->json('GET', '/stask/performance/alerts')['alerts'];
    }

    /**
     * `GET /stask/performance/timeline`: completed and failed tasks per interval.
     *
     * @return array<string, mixed>
     */
    public function performanceTimeline(int $hours = 24, int $buckets = 24): array
    {
        return $this->withoutSuccess($this->http->json('GET', '/stask/performance/timeline', ['hours' => $hours, 'buckets' => $buckets]));
    }

    /**
     * The worker-registry cache's counters (`hits, misses, evictions, hit_rate,
     * cache_size, ...`).
     *
     * @return array<string, mixed>
     */
    public function cacheStats(): array
    {
        return $this->http->json('GET', '/stask/cache/stats')['cache_stats'];
    }

    /**
     * Clears the worker-registry cache (one worker's entry, or all).
     *
     * @return array<string, mixed> `{success, message, cleared}`
     */
    public function clearCache(?string $identifier = null): array
    {
        return $this->http->json('POST', '/stask/cache/clear', body: $identifier === null ? [] : ['identifier' => $identifier]);
    }

    /**
     * The hosts sharing this queue (`GET /stask/hosts`).
     *
     * @return list<array<string, mixed>>
     */
    public function hosts(): array
    {
        return $this->http->json('GET', '/stask/hosts')['hosts'];
    }

    /**
     * `GET /stask/health` (no token needed): `{success, status: "ok"}`.
     *
     * @return array<string, mixed>
     */
    public function health(): array
    {
        return $this->http->json('GET', '/stask/health');
    }

    /**
     * `GET /stask/version` (no token needed): `{success, name, version, plugin_api}`.
     *
     * @return array<string, mixed>
     */
    public function versionInfo(): array
    {
        return $this->http->json('GET', '/stask/version');
    }

    /** The daemon's version (`0.4.0`), the seed's `sTaskVer`. */
    public function version(): string
    {
        return (string) $this->versionInfo()['version'];
    }

    /**
     * Whether a daemon answers at the configured URL (the seed's `check_sTask`): never throws.
     * It does not check the token; `stats()` does.
     */
    public function installed(): bool
    {
        try {
            return ($this->http->json('GET', '/stask/health', timeout: min($this->timeout, 5.0))['status'] ?? null) === 'ok';
        } catch (StaskException) {
            return false;
        }
    }

    /**
     * The OpenAPI document of the daemon's API.
     *
     * @return array<string, mixed>
     */
    public function openapi(): array
    {
        return $this->http->json('GET', '/stask/openapi.json');
    }

    // ---- helpers -----------------------------------------------------------------------

    /** @param list<array<string, mixed>> $tasks @return Collection<Task> */
    private function taskList(array $tasks): Collection
    {
        return new Collection(array_map(fn ($t) => new Task($t, $this), $tasks));
    }

    /** @param list<array<string, mixed>> $files @return Collection<Worker> */
    private function loadedWorkers(array $files): Collection
    {
        $workers = [];
        foreach ($files as $file) {
            if (($file['outcome'] ?? null) === 'loaded' && is_string($file['identifier'] ?? null)) {
                $workers[] = $this->worker($file['identifier']);
            }
        }
        return new Collection($workers);
    }

    /** @param array<string, mixed> $answer @return array<string, mixed> */
    private function withoutSuccess(array $answer): array
    {
        unset($answer['success']);
        return $answer;
    }

    /** The cron installation: one `stask process` pass. */
    private function processPass(?int $batchSize): int
    {
        $command = [$this->binary];
        if ($this->home !== null) {
            array_push($command, '--home', $this->home);
        }
        $command[] = 'process';
        if ($batchSize !== null) {
            array_push($command, '--batch-size', (string) $batchSize);
        }
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        if (!is_resource($process)) {
            throw new UnavailableException("cannot run {$this->binary}", 0, null, null, null);
        }
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $code = proc_close($process);
        $shown = implode(' ', $command);
        $why = trim((string) $err) !== '' ? trim((string) $err) : trim((string) $out);
        // The CLI's exit codes: 4 conflict (another daemon or pass holds the home), 5 invalid.
        if ($code === 4) {
            throw new ConflictException("$shown: $why", 0, null, null, null);
        }
        if ($code === 5 || $code === 2) {
            throw new InvalidException("$shown: $why", 0, null, null, null);
        }
        if ($code !== 0 || !preg_match('/processed (\d+) tasks/', (string) $out, $m)) {
            throw new StaskException("$shown exited with $code: $why", 0, null, null, null);
        }
        return (int) $m[1];
    }

    /**
     * The daemon installation: waits for the daemon to finish what is in hand now — running
     * tasks first, then due pending tasks of active workers in claim order.
     */
    private function awaitDaemon(int $batchSize, float $timeout): int
    {
        $running = array_reverse($this->tasks(['status' => 'preparing,running'], perPage: 500)['tasks']->all());
        $inactive = $this->workers(active: false)->pluck('identifier');
        $now = time();
        $due = $this->pendingTasks(500)->filter(
            fn (Task $t) => !in_array($t->identifier, $inactive, true)
                && strtotime((string) ($t->run_at ?? 'now')) <= $now,
        )->all();
        $batch = array_slice(array_merge($running, $due), 0, $batchSize);
        $deadline = microtime(true) + $timeout;
        $finished = 0;
        foreach ($batch as $task) {
            try {
                $this->wait($task->id, max(0.0, $deadline - microtime(true)));
                $finished++;
            } catch (TimeoutException) {
                // Not finished in time: not counted; it is still the daemon's to run.
            } catch (Exceptions\NotFoundException) {
                // Deleted meanwhile (by a clean or a user): nothing was processed.
            }
        }
        return $finished;
    }

    private static function env(string $name): ?string
    {
        $value = getenv($name);
        return $value === false || $value === '' ? null : $value;
    }
}
