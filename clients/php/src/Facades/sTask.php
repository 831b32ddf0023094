<?php

declare(strict_types=1);

namespace Stask\Facades;

use Stask\Client;
use Stask\Support\Collection;
use Stask\Task;
use Stask\Worker;

/**
 * The seed's `sTask` facade, with its method and argument names: replace
 * `use Seiger\sTask\Facades\sTask;` by `use Stask\Facades\sTask;` and the seed's calls run
 * against the daemon.
 *
 * The client behind it is, in this order: the one given to `setClient()`; in an application
 * built on Laravel components, the container's `stask` binding (`StaskServiceProvider`
 * registers it from `config/stask.php`); else one built from `STASK_URL` / `STASK_TOKEN`.
 * Every other `Client` method is reachable as a static call too (`sTask::progress($id)`).
 *
 * @method static array progress(int $id)
 * @method static Task task(int $id)
 * @method static Task wait(int $id, float $timeout = 60.0, ?callable $onProgress = null)
 * @method static array cancel(int $id)
 * @method static array retry(int $id)
 * @method static array delete(int $id)
 * @method static int download(int $id, string $path)
 * @method static array upload(string $path)
 * @method static array tasks(array $filters = [], int $page = 1, int $perPage = 50)
 * @method static array createBatch(array $tasks, ?array $onComplete = null, ?string $name = null)
 * @method static array batch(int $id)
 * @method static array batches(int $page = 1, int $perPage = 50)
 * @method static array cancelBatch(int $id)
 * @method static Worker worker(string $identifier)
 * @method static array workerSettings(string $identifier)
 * @method static array updateWorkerSettings(string $identifier, array $settings)
 * @method static array performanceSummary(int $hours = 24)
 * @method static array performanceWorkers(int $hours = 24)
 * @method static array performanceAlerts()
 * @method static array cacheStats()
 * @method static array clearCache(?string $identifier = null)
 * @method static array health()
 */
class sTask
{
    /** The container binding the facade resolves. */
    public const BINDING = 'stask';

    private static ?Client $client = null;

    /** Uses this client from now on (also the way to point the facade elsewhere in a test). */
    public static function setClient(?Client $client): void
    {
        self::$client = $client;
    }

    /** The client calls go to (see the class comment for the order). */
    public static function getClient(): Client
    {
        if (self::$client !== null) {
            return self::$client;
        }
        $container = self::container();
        if ($container !== null) {
            // Not cached: the container owns its singleton, and a test may swap it.
            return $container->make(self::BINDING);
        }
        return self::$client = Client::fromConfig([]);
    }

    /**
     * Creates a task (the seed's signature) and returns it. `$options` takes the further
     * control keys, among them `depends_on` (the tasks it waits for: ids or tasks) and
     * `on_parent_failure` (`cancel` or `run`); see {@see Client::create()}.
     *
     * @param array<string, mixed> $data
     * @param \DateTimeInterface|string|int|null $startAt
     */
    public static function create(
        string $identifier,
        string $action,
        array $data = [],
        string $priority = 'normal',
        ?int $userId = null,
        \DateTimeInterface|string|int|null $startAt = null,
        ?int $maxAttempts = null,
        array $options = [],
    ): Task {
        return self::getClient()->create($identifier, $action, $data, $priority, $userId, $startAt, $maxAttempts, $options);
    }

    /** See {@see Client::processPendingTasks()}: what it does differs by installation. */
    public static function processPendingTasks(?int $batchSize = null, float $timeout = 60.0): int
    {
        return self::getClient()->processPendingTasks($batchSize, $timeout);
    }

    /** Workers newly registered from plugins.d/. @return Collection<Worker> */
    public static function discoverWorkers(): Collection
    {
        return self::getClient()->discoverWorkers();
    }

    /** Workers rewritten from their libraries. @return Collection<Worker> */
    public static function rescanWorkers(): Collection
    {
        return self::getClient()->rescanWorkers();
    }

    /** How many orphaned worker rows were deleted. */
    public static function cleanOrphanedWorkers(): int
    {
        return self::getClient()->cleanOrphanedWorkers();
    }

    /** All workers, or only the active ones. @return Collection<Worker> */
    public static function getWorkers(bool $activeOnly = true, ?string $scope = null): Collection
    {
        return self::getClient()->getWorkers($activeOnly, $scope);
    }

    /** Activates a worker; returns it. */
    public static function activateWorker(string $identifier): Worker
    {
        return self::getClient()->activateWorker($identifier);
    }

    /** Deactivates a worker; returns it. */
    public static function deactivateWorker(string $identifier): Worker
    {
        return self::getClient()->deactivateWorker($identifier);
    }

    /** `pending, preparing, running, completed, failed, cancelled, total`. @return array<string, int> */
    public static function getStats(): array
    {
        return self::getClient()->getStats();
    }

    /** Pending tasks in claim order. @return Collection<Task> */
    public static function getPendingTasks(int $limit = 10): Collection
    {
        return self::getClient()->getPendingTasks($limit);
    }

    /** How many finished tasks older than `$days` days were deleted. */
    public static function cleanOldTasks(int $days = 30): int
    {
        return self::getClient()->cleanOldTasks($days);
    }

    /** Whether a daemon answers (the seed's `check_sTask`); never throws. */
    public static function installed(): bool
    {
        return self::getClient()->installed();
    }

    /** The daemon's version (the seed's `sTaskVer`). */
    public static function version(): string
    {
        return self::getClient()->version();
    }

    /** Every other Client method, statically. @param array<int|string, mixed> $arguments */
    public static function __callStatic(string $method, array $arguments): mixed
    {
        $client = self::getClient();
        if (!method_exists($client, $method)) {
            throw new \BadMethodCallException("sTask has no method $method");
        }
        return $client->$method(...$arguments);
    }

    /**
     * The Laravel container the facades use, when one is set and binds `stask`. Looked up by
     * name: Illuminate is optional, not a dependency of this package.
     */
    private static function container(): ?object
    {
        $facade = 'Illuminate\\Support\\Facades\\Facade';
        if (!class_exists($facade, false)) {
            return null;
        }
        $app = $facade::getFacadeApplication();
        return is_object($app) && method_exists($app, 'bound') && $app->bound(self::BINDING) ? $app : null;
    }
}
