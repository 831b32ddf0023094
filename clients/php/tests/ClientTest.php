<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Exceptions\NotFoundException;
use Stask\Exceptions\TimeoutException;
use Stask\Support\Collection;
use Stask\Support\Timestamp;
use Stask\Task;
use Stask\Worker;

/**
 * Every Client call against the real daemon (workers demo, product, email_campaign, system).
 */
final class ClientTest extends DaemonTestCase
{
    public function testHealthVersionAndInstalled(): void
    {
        $this->assertSame('ok', $this->client->health()['status']);
        $info = $this->client->versionInfo();
        $this->assertSame('stask', $info['name']);
        $this->assertMatchesRegularExpression('/^\d+\.\d+\.\d+/', $this->client->version());
        $this->assertSame($info['version'], $this->client->version());
        $this->assertTrue($this->client->installed());
    }

    public function testCreateReadsBackEveryOption(): void
    {
        $startAt = new \DateTimeImmutable('+2 hours');
        $task = $this->client->create(
            identifier: 'demo',
            action: 'noop',
            data: ['note' => 'from PHP', 'nested' => ['a' => 1]],
            priority: 'high',
            userId: 42,
            startAt: $startAt,
            maxAttempts: 5,
        );
        $this->assertInstanceOf(Task::class, $task);
        $this->assertGreaterThan(0, $task->id);
        $this->assertSame('demo', $task->identifier);
        $this->assertSame('noop', $task->action);
        $this->assertSame(Task::PENDING, $task->status, 'scheduled two hours ahead, it waits');
        $this->assertSame('Pending', $task->status_text);
        $this->assertTrue($task->isPending());
        $this->assertFalse($task->isRunning());
        $this->assertFalse($task->isFinished());
        $this->assertSame('high', $task->priority);
        $this->assertSame(42, $task->started_by);
        $this->assertSame(5, $task->max_attempts);
        $this->assertSame(0, $task->attempts);
        $this->assertEquals(['note' => 'from PHP', 'nested' => ['a' => 1]], $task->meta);
        $this->assertInstanceOf(Timestamp::class, $task->start_at);
        $this->assertSame($startAt->getTimestamp(), $task->start_at->getTimestamp());
        $this->assertNull($task->finished_at);
        $this->assertInstanceOf(Timestamp::class, $task->created_at);
        $this->assertLessThan(60, abs(time() - $task->created_at->getTimestamp()));

        // A pending task is listed in claim order; cancelling it ends it at once.
        $pending = $this->client->pendingTasks(limit: 500);
        $this->assertInstanceOf(Collection::class, $pending);
        $this->assertContains($task->id, $pending->pluck('id'));
        $answer = $this->client->cancel($task->id);
        $this->assertSame('cancelled', $answer['status']);
        $this->assertSame(Task::CANCELLED, $task->fresh()->status);
        $this->assertTrue($task->isFinished());
        $this->assertNotContains($task->id, $this->client->pendingTasks(limit: 500)->pluck('id'));
    }

    public function testTaskAndProgressOfAFinishedTask(): void
    {
        $task = $this->client->create('demo', 'run', ['steps' => 3, 'sleep_ms' => 10, 'result' => 'all done']);
        $done = $this->client->wait($task->id, 30);
        $this->assertSame(Task::COMPLETED, $done->status);
        $this->assertSame('Completed', $done->status_text);
        $this->assertSame('all done', $done->result);
        $this->assertSame(100, $done->progress);
        $this->assertSame(1, $done->attempts);
        $this->assertInstanceOf(Timestamp::class, $done->finished_at);
        $this->assertGreaterThanOrEqual($done->created_at->getTimestamp(), $done->finished_at->getTimestamp());
        $this->assertNotEmpty($done->log(), 'the detail carries the log');

        $progress = $this->client->progress($task->id);
        $this->assertSame($task->id, $progress['id']);
        $this->assertSame('completed', $progress['status']);
        $this->assertSame(100, $progress['progress']);
        $this->assertArrayHasKey('eta', $progress);
        $this->assertIsArray($progress['log_lines']);

        $read = $this->client->task($task->id);
        $this->assertSame($done->toArray()['id'], $read->id);
        $this->assertSame('completed', $read->status_name);
        // Fields outside the seed's read as properties too.
        $this->assertSame(3, $read->total);
        $this->assertSame(3, $read->processed);
    }

    public function testWaitReportsProgressUntilTheEnd(): void
    {
        $task = $this->client->create('demo', 'run', ['steps' => 5, 'sleep_ms' => 150]);
        $seen = [];
        $done = $this->client->wait($task->id, 30, function (array $progress) use (&$seen) {
            $seen[] = $progress;
        });
        $this->assertSame(Task::COMPLETED, $done->status);
        $this->assertGreaterThanOrEqual(2, count($seen), 'progress changes were reported: ' . json_encode($seen));
        $percents = array_column($seen, 'progress');
        $sorted = $percents;
        sort($sorted);
        $this->assertSame($sorted, $percents, 'progress only grows');
        $this->assertSame('completed', end($seen)['status']);
        $this->assertSame(100, end($seen)['progress']);
    }

    public function testWaitTimesOutThenCancelStopsARunningTask(): void
    {
        $task = $this->client->create('demo', 'run', ['steps' => 200, 'sleep_ms' => 50]);
        try {
            $this->client->wait($task->id, 0.3);
            $this->fail('a 10 s task cannot finish within 0.3 s');
        } catch (TimeoutException $e) {
            $this->assertStringContainsString("task {$task->id} is still", $e->getMessage());
        }
        $this->client->cancel($task->id);
        $done = $this->client->wait($task->id, 30);
        $this->assertSame(Task::CANCELLED, $done->status);
        $this->assertTrue($done->isCancelled());
    }

    public function testRetryRunsAFailedTaskAgainAndDeleteRemovesIt(): void
    {
        $task = $this->client->create('demo', 'run', ['steps' => 1, 'sleep_ms' => 1, 'fail_permanent' => true], maxAttempts: 1);
        $failed = $this->client->wait($task->id, 30);
        $this->assertSame(Task::FAILED, $failed->status);
        $this->assertTrue($failed->isFailed());
        $this->assertNotEmpty($failed->last_error);

        $answer = $this->client->retry($task->id);
        $this->assertTrue($answer['success']);
        $again = $this->client->wait($task->id, 30);
        $this->assertSame(Task::FAILED, $again->status, 'the retry ran it again, and it failed again');
        $this->assertGreaterThan($failed->finished_at->format('U.u'), $again->finished_at->format('U.u'));

        $this->client->delete($task->id);
        $this->expectException(NotFoundException::class);
        $this->client->task($task->id);
    }

    public function testUploadImportExportAndDownload(): void
    {
        $csv = tempnam(sys_get_temp_dir(), 'stask-php-') . '.csv';
        // A category and SKUs of this run only, so that a rerun on the same daemon creates anew.
        $run = bin2hex(random_bytes(3));
        $category = random_int(1000, 1000000);
        $rows = [['sku', 'name', 'price', 'stock', 'category_id', 'active'], ["PHP-$run-1", 'Up "loaded"', '3.5', '4', $category, 'yes'], ["PHP-$run-2", 'Second, one', '10', '0', $category, 'yes']];
        $file = fopen($csv, 'wb');
        foreach ($rows as $row) {
            fputcsv($file, $row);
        }
        fclose($file);
        $upload = $this->client->upload($csv);
        $this->assertSame(filesize($csv), $upload['size']);
        $this->assertStringEndsWith('.csv', $upload['path']);

        $import = $this->client->wait($this->client->create('product', 'import', ['file' => $upload['path']])->id, 30);
        $this->assertSame(Task::COMPLETED, $import->status, (string) $import->message);
        $this->assertSame(2, json_decode((string) $import->result, true)['created']);

        $export = $this->client->create('product', 'export', ['format' => 'csv', 'filters' => ['category_id' => $category], 'fields' => ['sku', 'name', 'price']]);
        $export = $this->client->wait($export->id, 30);
        $this->assertSame(Task::COMPLETED, $export->status, (string) $export->message);
        $target = sys_get_temp_dir() . '/stask-php-export-' . $export->id . '.csv';
        $bytes = $this->client->download($export->id, $target);
        $this->assertSame(filesize($target), $bytes);
        $lines = array_map('str_getcsv', array_filter(explode("\n", (string) file_get_contents($target))));
        $this->assertSame(['sku', 'name', 'price'], $lines[0]);
        $skus = array_column(array_slice($lines, 1), 0);
        sort($skus);
        $this->assertSame(["PHP-$run-1", "PHP-$run-2"], $skus);
        $this->assertContains('Up "loaded"', array_column($lines, 1));
        unlink($target);
        unlink($csv);
    }

    public function testListFiltersAndPages(): void
    {
        $marker = 'list-' . bin2hex(random_bytes(4));
        $ids = [];
        foreach ([1, 2, 3] as $i) {
            $ids[] = $this->client->create('demo', 'noop', ['marker' => $marker, 'i' => $i], priority: 'low', userId: 900 + $i)->id;
        }
        foreach ($ids as $id) {
            $this->client->wait($id, 30);
        }
        $page = $this->client->tasks(['q' => $marker], page: 1, perPage: 2);
        $this->assertSame(3, $page['total']);
        $this->assertSame(1, $page['page']);
        $this->assertSame(2, $page['per_page']);
        $this->assertCount(2, $page['tasks']);
        $this->assertSame([$ids[2], $ids[1]], $page['tasks']->pluck('id'), 'newest first');
        $second = $this->client->tasks(['q' => $marker], page: 2, perPage: 2);
        $this->assertSame([$ids[0]], $second['tasks']->pluck('id'));

        $byUser = $this->client->tasks(['started_by' => 902]);
        $this->assertSame([$ids[1]], $byUser['tasks']->pluck('id'));
        $filtered = $this->client->tasks(['q' => $marker, 'status' => 'completed', 'identifier' => 'demo', 'action' => 'noop', 'priority' => 'low']);
        $this->assertSame(3, $filtered['total']);
        $this->assertSame(0, $this->client->tasks(['q' => $marker, 'status' => 'failed'])['total']);
        $this->assertSame(0, $this->client->tasks(['q' => $marker, 'priority' => 'high'])['total']);
    }

    public function testStatsCountEveryStatus(): void
    {
        $before = $this->client->stats();
        foreach (['pending', 'preparing', 'running', 'completed', 'failed', 'cancelled', 'total'] as $key) {
            $this->assertIsInt($before[$key], $key);
        }
        $this->client->wait($this->client->create('demo', 'noop')->id, 30);
        $after = $this->client->getStats();
        $this->assertSame($before['total'] + 1, $after['total']);
        $this->assertSame($before['completed'] + 1, $after['completed']);
        $sum = $after['pending'] + $after['preparing'] + $after['running'] + $after['completed'] + $after['failed'] + $after['cancelled'];
        $this->assertSame($after['total'], $sum);
    }

    public function testWorkersListFilterAndDetail(): void
    {
        $all = $this->client->workers();
        $this->assertSame(['demo', 'email_campaign', 'product', 'system'], $this->sorted($all->pluck('identifier')));
        $product = $all->first(fn (Worker $w) => $w->identifier === 'product');
        $this->assertSame('commerce', $product->scope);
        $this->assertSame('Products', $product->title);
        $this->assertTrue($product->active);
        $this->assertSame('loaded', $product->state);
        $this->assertSame(['import', 'export'], $product->actionNames());
        $this->assertNotSame('', $product->class);

        $this->assertSame(['demo', 'system'], $this->sorted($this->client->workers(scope: 'stask')->pluck('identifier')));
        $this->assertSame(['product'], $this->client->getWorkers(activeOnly: true, scope: 'commerce')->pluck('identifier'));
        $one = $this->client->worker('email_campaign');
        $this->assertSame('marketing', $one->scope);
        $report = $this->client->workersReport();
        $this->assertCount(4, $report['plugin_files']);
        $this->assertArrayHasKey('loaded_copies', $report);
    }

    public function testDeactivatedWorkersTasksWaitUntilActivated(): void
    {
        $worker = $this->client->deactivateWorker('system');
        $this->assertFalse($worker->active);
        $this->assertSame([], array_values(array_intersect(['system'], $this->client->workers(active: true)->pluck('identifier'))));
        $this->assertContains('system', $this->client->workers(active: false)->pluck('identifier'));
        try {
            $this->assertSame(['system'], $this->client->getWorkers(activeOnly: false, scope: 'stask')->filter(fn ($w) => !$w->active)->pluck('identifier'));
        } finally {
            $this->assertTrue($this->client->activateWorker('system')->active);
        }
        $this->assertTrue($this->client->worker('system')->active);
    }

    public function testAPausedWorkersTasksWaitAndRunOnResume(): void
    {
        $worker = $this->client->pauseWorker('demo');
        $this->assertTrue($worker->paused);
        try {
            $task = $this->client->create(identifier: 'demo', action: 'noop');
            $this->assertTrue($task->isPending());
            $this->assertTrue($task->paused, 'the task says why it waits');
            $this->assertStringContainsString('paused', $task->message);
        } finally {
            $this->assertFalse($this->client->resumeWorker('demo')->paused);
        }
        $this->assertSame(Task::COMPLETED, $this->client->wait($task->id, 30)->status);
    }

    public function testAUniqueKeyHeldGivesBackTheTaskHoldingIt(): void
    {
        $key = 'php-' . bin2hex(random_bytes(4));
        $first = $this->client->create(identifier: 'demo', action: 'noop', startAt: time() + 3600, uniqueKey: $key);
        $this->assertFalse($first->duplicate);
        $this->assertSame($key, $first->unique_key);
        $again = $this->client->create(identifier: 'demo', action: 'noop', uniqueKey: $key);
        $this->assertTrue($again->duplicate);
        $this->assertSame($first->id, $again->id);
        $this->client->cancel($first->id);
        $after = $this->client->create(identifier: 'demo', action: 'noop', uniqueKey: $key, uniqueFor: 60);
        $this->assertFalse($after->duplicate, 'a cancelled task holds its key no longer');
        $this->assertNotSame($first->id, $after->id);
    }

    public function testADependantWaitsForItsParentsAndAFailureCancelsIt(): void
    {
        $parent = $this->client->create(identifier: 'demo', action: 'run', data: ['steps' => 2, 'sleep_ms' => 50]);
        $child = $this->client->create(identifier: 'demo', action: 'noop', options: ['depends_on' => [$parent]]);
        $this->assertSame([$parent->id], $child->dependencies['depends_on']);
        $this->assertSame('cancel', $child->dependencies['on_parent_failure']);
        $done = $this->client->wait($child->id, 30);
        $this->assertTrue($done->isCompleted());
        $this->assertTrue($this->client->task($parent->id)->isCompleted(), 'the parent ran first');

        $failing = $this->client->create(identifier: 'demo', action: 'run', data: ['steps' => 1, 'fail_permanent' => true]);
        $cancelled = $this->client->create(identifier: 'demo', action: 'noop', options: ['depends_on' => $failing->id]);
        $anyway = $this->client->create(identifier: 'demo', action: 'noop', options: ['depends_on' => [$failing], 'on_parent_failure' => 'run']);
        $this->assertSame(Task::CANCELLED, $this->client->wait($cancelled->id, 30)->status);
        $this->assertSame("Cancelled: task {$failing->id} it depends on failed", $this->client->task($cancelled->id)->message);
        $this->assertTrue($this->client->wait($anyway->id, 30)->isCompleted());
    }

    public function testAnUnknownParentIsRefused(): void
    {
        try {
            $this->client->create(identifier: 'demo', action: 'noop', options: ['depends_on' => [999999999]]);
            $this->fail('an unknown parent was accepted');
        } catch (\Stask\Exceptions\InvalidException $e) {
            $this->assertSame(422, $e->getStatus());
            $this->assertStringContainsString('999999999', $e->getMessage());
        }
    }

    public function testSchedulesRoundTrip(): void
    {
        $name = 'php-' . bin2hex(random_bytes(4));
        $created = $this->client->createSchedule([
            'name' => $name, 'identifier' => 'demo', 'action' => 'noop',
            'cron' => '0 3 * * *', 'timezone' => 'Europe/Berlin', 'data' => ['from' => 'php'],
        ]);
        $id = (int) $created['id'];
        $this->assertSame($name, $created['name']);
        $this->assertSame('api', $created['source']);
        $this->assertNotNull($created['next_run_at']);
        $this->assertContains($name, array_column($this->client->schedules(), 'name'));
        $this->assertSame('Europe/Berlin', $this->client->schedule($id)['timezone']);
        $this->assertFalse($this->client->disableSchedule($id)['enabled']);
        $this->assertTrue($this->client->enableSchedule($id)['enabled']);
        $updated = $this->client->updateSchedule($id, [
            'name' => $name, 'identifier' => 'demo', 'action' => 'noop', 'cron' => '@hourly',
        ]);
        $this->assertSame('@hourly', $updated['cron']);
        try {
            $this->client->createSchedule(['name' => $name . 'x', 'identifier' => 'demo', 'action' => 'noop', 'cron' => 'not cron']);
            $this->fail('a bad expression is refused');
        } catch (\Stask\Exceptions\InvalidException $e) {
            $this->assertSame(422, $e->getStatus());
        }
        $this->client->deleteSchedule($id);
        $this->expectException(NotFoundException::class);
        $this->client->schedule($id);
    }

    public function testSettingsRoundTrip(): void
    {
        $before = $this->client->workerSettings('email_campaign');
        $this->assertIsArray($before['settings']);
        $this->assertIsArray($before['default_settings']);
        $saved = $this->client->updateWorkerSettings('email_campaign', array_merge($before['settings'], ['from' => 'Shop <shop@example.com>']));
        $this->assertSame('Shop <shop@example.com>', $saved['settings']['from']);
        $this->assertSame('Shop <shop@example.com>', $this->client->workerSettings('email_campaign')['settings']['from']);
        $this->client->updateWorkerSettings('email_campaign', $before['settings']);
        $this->assertEquals($before['settings'], $this->client->workerSettings('email_campaign')['settings'], 'the old settings are back');
    }

    public function testDiscoverRescanAndCleanOrphaned(): void
    {
        // Nothing changed in plugins.d/ since the daemon loaded it.
        $this->assertCount(0, $this->client->discoverWorkers());
        $report = $this->client->scanReport();
        $this->assertCount(4, $report);
        foreach ($report as $file) {
            $this->assertSame('unchanged', $file['outcome'], json_encode($file));
        }
        $rescanned = $this->client->rescanWorkers();
        $this->assertSame(['demo', 'email_campaign', 'product', 'system'], $this->sorted($rescanned->pluck('identifier')));
        $this->assertSame(0, $this->client->cleanOrphanedWorkers());
    }

    public function testPerformanceCacheHostsAndOpenapi(): void
    {
        $this->client->wait($this->client->create('demo', 'noop')->id, 30);
        $summary = $this->client->performanceSummary(hours: 24);
        $this->assertSame(24, $summary['period']['hours']);
        $this->assertGreaterThanOrEqual(1, $summary['tasks']['completed']);
        $this->assertArrayHasKey('success_rate', $summary['performance']);
        $workers = $this->client->performanceWorkers(hours: 24);
        $this->assertSame('demo', $workers['demo']['identifier']);
        $this->assertGreaterThanOrEqual(1, $workers['demo']['total_tasks']);
        $this->assertIsArray($this->client->performanceAlerts());
        $timeline = $this->client->performanceTimeline(hours: 2, buckets: 4);
        $this->assertArrayNotHasKey('success', $timeline);
        $this->assertNotEmpty($timeline);

        $stats = $this->client->cacheStats();
        foreach (['hits', 'misses', 'evictions', 'hit_rate', 'cache_size'] as $key) {
            $this->assertArrayHasKey($key, $stats);
        }
        $cleared = $this->client->clearCache();
        $this->assertSame('Cache cleared successfully', $cleared['message']);
        $this->assertSame(0, $this->client->cacheStats()['cache_size']);
        $this->assertSame(0, $this->client->clearCache('product')['cleared']);

        $hosts = $this->client->hosts();
        $this->assertGreaterThanOrEqual(1, count($hosts));
        $this->assertArrayHasKey('/stask/tasks/{id}/progress', $this->client->openapi()['paths']);
    }

    public function testProcessPendingTasksWaitsForTheDaemon(): void
    {
        // The daemon runs tasks by itself; the call waits for those in hand (two of three,
        // the batch) and leaves the one scheduled for later alone.
        $later = $this->client->create('demo', 'noop', startAt: new \DateTimeImmutable('+1 hour'))->id;
        $ids = [];
        foreach ([1, 2, 3] as $i) {
            $ids[] = $this->client->create('demo', 'run', ['steps' => 8, 'sleep_ms' => 250])->id;
        }
        $this->assertSame(2, $this->client->processPendingTasks(batchSize: 2));
        $finished = array_filter($ids, fn ($id) => $this->client->task($id)->isFinished());
        $this->assertGreaterThanOrEqual(2, count($finished), 'it returned once two had finished');
        $this->assertTrue($this->client->task($later)->isPending(), 'a task due later is not waited for');
        foreach ($ids as $id) {
            $this->assertTrue($this->client->wait($id, 30)->isCompleted());
        }
        $this->assertSame(0, $this->client->processPendingTasks(timeout: 1), 'nothing is due');
        $this->client->cancel($later);
    }

    public function testCleanOldTasks(): void
    {
        $id = $this->client->create('demo', 'noop')->id;
        $this->client->wait($id, 30);
        $this->assertSame(0, $this->client->cleanOldTasks(days: 3650), 'nothing is ten years old');
        $deleted = $this->client->cleanOldTasks(days: 0);
        $this->assertGreaterThanOrEqual(1, $deleted);
        $this->assertSame(0, $this->client->tasks(['status' => 'finished'])['total']);
    }

    /** @param list<string> $list @return list<string> */
    private function sorted(array $list): array
    {
        sort($list);
        return $list;
    }
}
