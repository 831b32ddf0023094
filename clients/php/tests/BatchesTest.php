<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Exceptions\InvalidException;
use Stask\Exceptions\NotFoundException;
use Stask\Facades\sTask;
use Stask\Task;

/**
 * Batches through the client and the facade: created whole, followed, cancelled, refused
 * whole for one bad task, and the on_complete task's data holding the batch's figures.
 */
final class BatchesTest extends DaemonTestCase
{
    public function testABatchRunsItsOnCompleteOnceWithTheCounts(): void
    {
        $tasks = [];
        for ($i = 0; $i < 5; $i++) {
            $tasks[] = ['identifier' => 'demo', 'action' => 'noop', 'data' => ['i' => $i]];
        }
        $tasks[] = ['identifier' => 'demo', 'action' => 'run', 'data' => ['steps' => 1, 'sleep_ms' => 1, 'fail_permanent' => true]];
        $created = $this->client->createBatch(
            $tasks,
            onComplete: ['identifier' => 'demo', 'action' => 'noop', 'data' => ['report' => 'yes']],
            name: 'from PHP',
        );
        $this->assertGreaterThan(0, $created['id']);
        $this->assertCount(6, $created['task_ids']);
        $this->assertSame(0, $created['duplicates']);
        $this->assertIsInt($created['on_complete_task_id']);

        $done = $this->client->wait($created['on_complete_task_id'], 30);
        $this->assertSame(Task::COMPLETED, $done->status);
        $this->assertSame('yes', $done->meta['report']);
        $batch = $done->meta['batch'];
        $this->assertSame($created['id'], $batch['id']);
        $this->assertSame(6, $batch['total']);
        $this->assertSame(5, $batch['completed']);
        $this->assertSame(1, $batch['failed']);
        $this->assertSame($created['task_ids'], $batch['task_ids']);

        $view = sTask::batch($created['id']);
        $this->assertTrue($view['done']);
        $this->assertSame('from PHP', $view['name']);
        $this->assertSame(6, $view['finished']);
        $this->assertSame(5, $view['counts']['completed']);
        $list = sTask::batches();
        $this->assertContains($created['id'], array_column($list['batches'], 'id'));
    }

    public function testCancelBatchCancelsWhatHadNotFinished(): void
    {
        $later = time() + 86400;
        $created = sTask::createBatch([
            ['identifier' => 'demo', 'action' => 'noop', 'start_at' => $later],
            ['identifier' => 'demo', 'action' => 'noop', 'start_at' => $later],
        ]);
        $answer = sTask::cancelBatch($created['id']);
        $this->assertSame(2, $answer['cancelled']);
        $this->assertSame(0, $answer['requested']);
        $this->assertSame(2, $answer['batch']['counts']['cancelled']);
        foreach ($created['task_ids'] as $id) {
            $this->assertSame(Task::CANCELLED, $this->client->task($id)->status);
        }
        $this->expectException(NotFoundException::class);
        $this->client->batch(987654321);
    }

    public function testOneBadTaskRefusesTheWholeBatch(): void
    {
        $before = $this->client->batches()['total'];
        try {
            $this->client->createBatch([
                ['identifier' => 'demo', 'action' => 'noop'],
                ['identifier' => 'nope', 'action' => 'noop'],
            ]);
            $this->fail('the batch must be refused');
        } catch (InvalidException $e) {
            $this->assertSame(422, $e->getStatus());
            $this->assertStringStartsWith('tasks[1]: ', $e->getServerMessage());
        }
        $this->assertSame($before, $this->client->batches()['total']);
    }
}
