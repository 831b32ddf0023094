<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Facades\sTask;

/**
 * The seed's "Task Statistics" and "Clean Old Tasks" samples as written (with
 * `use Stask\...`), on known tasks: two completed, one failed, one cancelled, two pending
 * (scheduled for later).
 */
final class SeedStatisticsTest extends DaemonTestCase
{
    public function testTaskStatisticsAndPendingTasks(): void
    {
        $before = sTask::getStats();
        foreach ([1, 2] as $i) {
            $this->client->wait(sTask::create(identifier: 'demo', action: 'noop')->id, 30);
        }
        $this->client->wait(sTask::create(identifier: 'demo', action: 'run', data: ['fail_permanent' => true])->id, 30);
        $cancelled = sTask::create(identifier: 'demo', action: 'noop', startAt: time() + 3600);
        $this->client->cancel($cancelled->id);
        $later = [
            sTask::create(identifier: 'system', action: 'cleanup', data: ['older_than_days' => 30], priority: 'low', startAt: time() + 3600),
            sTask::create(identifier: 'product', action: 'export', data: ['format' => 'csv'], priority: 'high', startAt: time() + 7200),
        ];

        try {
            $this->statisticsSample($before, $later);
        } finally {
            foreach ($later as $task) {
                $this->client->cancel($task->id);
            }
        }
    }

    /** @param array<string, int> $before @param list<\Stask\Task> $later */
    private function statisticsSample(array $before, array $later): void
    {
        $printed = $this->output(function () {
            // Get comprehensive statistics
            $stats = sTask::getStats();
            echo "Task Statistics:\n";
            echo " Pending: {$stats['pending']}\n";
            echo " Running: {$stats['running']}\n";
            echo " Completed: {$stats['completed']}\n";
            echo " Failed: {$stats['failed']}\n";
            echo " Cancelled: {$stats['cancelled']}\n";
            echo " Total: {$stats['total']}\n";
            // Get pending tasks details
            $pending = sTask::getPendingTasks(limit: 10);
            echo "\nPending Tasks:\n";
            foreach ($pending as $task) {
                echo " #{$task->id}: {$task->identifier} -> {$task->action}\n";
                echo " Priority: {$task->priority}\n";
                echo " Created: {$task->created_at->diffForHumans()}\n";
            }
        });
        $expected = sprintf(
            "Task Statistics:\n Pending: %d\n Running: 0\n Completed: %d\n Failed: %d\n Cancelled: %d\n Total: %d\n",
            $before['pending'] + 2,
            $before['completed'] + 2,
            $before['failed'] + 1,
            $before['cancelled'] + 1,
            $before['total'] + 6,
        );
        $this->assertStringStartsWith($expected, $printed);
        // Claim order: the high-priority one first.
        $this->assertStringContainsString("\n\nPending Tasks:\n #", $printed);
        $this->assertMatchesRegularExpression(
            "/\n #{$later[1]->id}: product -> export\n Priority: high\n Created: \\d+ seconds? ago\n #{$later[0]->id}: system -> cleanup\n Priority: low\n Created: \\d+ seconds? ago\n/",
            $printed,
        );
    }

    public function testCleanOldTasks(): void
    {
        $this->client->wait(sTask::create(identifier: 'demo', action: 'noop')->id, 30);
        $printed = $this->output(function () {
            // Remove completed tasks older than 30 days
            $deletedTasks = sTask::cleanOldTasks(days: 30);
            echo "Deleted {$deletedTasks} old tasks\n";
        });
        $this->assertSame("Deleted 0 old tasks\n", $printed, 'every task here is from today');
        $finished = $this->client->tasks(['status' => 'finished'])['total'];
        $this->assertGreaterThan(0, $finished);
        $this->assertSame($finished, sTask::cleanOldTasks(days: 0));
        $this->assertSame(0, $this->client->tasks(['status' => 'finished'])['total']);
    }
}
