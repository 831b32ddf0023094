<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Facades\sTask;
use Stask\Models\sTaskModel;

/**
 * The seed's "Quick Start Guide" (1-3) and "Basic Usage Examples" (1-4), each as written but
 * for `use Stask\...` instead of `use Seiger\sTask\...`, and these differences:
 * - worker `product_sync` is `product` (the example plugin's identifier);
 * - '/path/to/products.csv' is a file in the daemon's storage;
 * - Quick Start 2 finds the task Quick Start 1 made, not task #1.
 * What each sample printed is checked, then what the daemon did.
 */
final class SeedQuickStartTest extends DaemonTestCase
{
    private const HEADER = ['sku', 'name', 'price', 'stock', 'category_id', 'active'];

    /** A SKU no earlier run made: each import here creates its products. */
    private static function sku(string $prefix): string
    {
        return $prefix . '-' . bin2hex(random_bytes(4));
    }

    public function testQuickStartCreateCheckAndProcess(): void
    {
        $this->writeCsv('imports/products.csv', [self::HEADER, [self::sku('QS'), 'Quick', '1.5', '2', '5', 'yes']]);

        // 1. Create Your First Task (Programmatically)
        $printed = $this->output(function () use (&$task) {
            // Create a simple task
            $task = sTask::create(
                identifier: 'product', // Worker identifier
                action: 'import', // Action to perform
                data: [ // Task data
                    'file' => storage_path('imports/products.csv'),
                    'delimiter' => ',',
                    'skip_first_row' => true
                ],
                priority: 'normal', // 'low', 'normal', 'high'
                userId: evo()->getLoginUserID()
            );
            echo "Task #{$task->id} created successfully!\n";
        });
        $this->assertSame("Task #{$task->id} created successfully!\n", $printed);
        $firstId = $task->id;

        // 2. Check Task Status (after the daemon ran it, so that the finished branch prints)
        $this->client->wait($firstId, 30);
        $printed = $this->output(function () use ($firstId) {
            // Get task by ID
            $task = sTaskModel::find($firstId);
            // Check status
            if ($task->isPending()) {
                echo "Task is waiting to be processed\n";
            }
            if ($task->isRunning()) {
                echo "Task is currently executing\n";
                echo "Progress: {$task->progress}%\n";
            }
            if ($task->isFinished()) {
                echo "Task is completed\n";
                echo "Status: {$task->status_text}\n";
                echo "Message: {$task->message}\n";
            }
            // Get detailed information
            echo "Worker: {$task->identifier}\n";
            echo "Action: {$task->action}\n";
            echo "Created: {$task->created_at}\n";
            echo "Started by: User #{$task->started_by}\n";
        });
        $created = $this->client->task($firstId)->created_at;
        $this->assertStringStartsWith("Task is completed\nStatus: Completed\nMessage: ", $printed);
        $this->assertStringEndsWith("Worker: product\nAction: import\nCreated: $created\nStarted by: User #7\n", $printed);
        $this->assertMatchesRegularExpression('/^Created: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m', $printed);
        $this->assertSame(1, json_decode((string) $this->client->task($firstId)->result, true)['created']);
        $this->assertNull(sTaskModel::find(999999), 'find() answers null for no such task, as Eloquent');

        // 3. Process Pending Tasks: two tasks in hand (2 s each: the call sees them before they
        // end even on a busy machine); the daemon runs them, the call waits.
        $ids = [
            $this->client->create('demo', 'run', ['steps' => 8, 'sleep_ms' => 250])->id,
            $this->client->create('demo', 'run', ['steps' => 8, 'sleep_ms' => 250])->id,
        ];
        $printed = $this->output(function () {
            // Process all pending tasks
            $processedCount = sTask::processPendingTasks();
            echo "Processed {$processedCount} tasks\n";
        });
        $this->assertSame("Processed 2 tasks\n", $printed);
        foreach ($ids as $id) {
            $this->assertTrue($this->client->task($id)->isCompleted());
        }
        $printed = $this->output(function () {
            // Or process with custom batch size
            $processedCount = sTask::processPendingTasks(batchSize: 5);
            echo "Processed {$processedCount} tasks\n";
        });
        $this->assertSame("Processed 0 tasks\n", $printed, 'nothing was left');
    }

    public function testExample1ImportProducts(): void
    {
        $this->writeCsv('imports/products_2025.csv', [self::HEADER, [self::sku('EX1'), 'Alpha', '9.5', '3', '5', 'yes'], [self::sku('EX1'), 'Beta', '12', '0', '5', 'yes']]);
        $printed = $this->output(function () use (&$task) {
            // Create import task
            $task = sTask::create(
                identifier: 'product',
                action: 'import',
                data: [
                    'file' => storage_path('imports/products_2025.csv'),
                    'update_existing' => true,
                    'create_new' => true
                ],
                priority: 'high'
            );
            echo "Import task created: #{$task->id}\n";
        });
        $this->assertSame("Import task created: #{$task->id}\n", $printed);
        $this->assertSame('high', $task->priority);
        $done = $this->client->wait($task->id, 30);
        $this->assertTrue($done->isCompleted(), $done->message);
        $this->assertEquals(['created' => 2, 'updated' => 0, 'skipped' => 0, 'errors' => 0], json_decode((string) $done->result, true));
    }

    public function testExample2ExportData(): void
    {
        $printed = $this->output(function () use (&$task) {
            // Create export task
            $task = sTask::create(
                identifier: 'product',
                action: 'export',
                data: [
                    'format' => 'csv',
                    'filters' => [
                        'category_id' => 5,
                        'active' => true
                    ],
                    'fields' => ['id', 'sku', 'name', 'price', 'stock']
                ],
                priority: 'normal'
            );
            // Wait for completion (in real scenario, check via admin or API)
            while (!$task->fresh()->isFinished()) {
                sleep(1);
            }
            if ($task->status === 30) { // completed
                echo "Export completed!\n";
                echo "Download file: {$task->result}\n";
            }
        });
        $this->assertSame("Export completed!\nDownload file: {$task->result}\n", $printed);
        $this->assertSame("products-export-{$task->id}.csv", $task->result_file);
        $target = sys_get_temp_dir() . "/stask-example2-{$task->id}.csv";
        $this->client->download($task->id, $target);
        $this->assertStringStartsWith("id,sku,name,price,stock\n", (string) file_get_contents($target));
        unlink($target);
    }

    public function testExample3BulkEmailCampaign(): void
    {
        // The template and the attachment the sample names, in the daemon's storage.
        $template = storage_path('workers/email_campaign/templates/newsletter_2025.txt');
        @mkdir(dirname($template), 0777, true);
        file_put_contents($template, "Hello {{name}}, here is our January news.\n");
        $pdf = storage_path('newsletters/january_2025.pdf');
        @mkdir(dirname($pdf), 0777, true);
        file_put_contents($pdf, "%PDF-1.4\n% a test attachment\n");
        $outbox = storage_path('workers/email_campaign/outbox');
        $before = is_dir($outbox) ? count(glob("$outbox/*.eml")) : 0;

        // Create email task
        $task = sTask::create(
            identifier: 'email_campaign',
            action: 'send',
            data: [
                'template' => 'newsletter_2025',
                'recipients' => [
                    ['email' => 'user1@example.com', 'name' => 'John Doe'],
                    ['email' => 'user2@example.com', 'name' => 'Jane Smith'],
                    // ... more recipients
                ],
                'subject' => 'Monthly Newsletter - January 2025',
                'attachments' => [
                    storage_path('newsletters/january_2025.pdf')
                ]
            ],
            priority: 'normal'
        );

        $done = $this->client->wait($task->id, 30);
        $this->assertTrue($done->isCompleted(), $done->message);
        $result = json_decode((string) $done->result, true);
        $this->assertSame(2, $result['sent'], (string) $done->result);
        $this->assertSame(0, $result['failed']);
        $messages = glob("$outbox/*.eml");
        $this->assertCount($before + 2, $messages);
        $text = implode("\n", array_map('file_get_contents', $messages));
        $this->assertMatchesRegularExpression('/^To: "?Jane Smith"? <user2@example.com>\r?$/m', $text);
        $this->assertStringContainsString('Hello John Doe, here is our January news.', $text);
        $this->assertStringContainsString('january_2025.pdf', $text);
    }

    public function testExample4ScheduledCleanup(): void
    {
        $printed = $this->output(function () use (&$task) {
            // Create cleanup task scheduled for later
            $task = sTaskModel::create([
                'identifier' => 'system',
                'action' => 'cleanup',
                'status' => 10, // pending
                'priority' => 'low',
                'start_at' => now()->addHours(2), // Run in 2 hours
                'meta' => [
                    'clean_cache' => true,
                    'older_than_days' => 30
                ]
            ]);
            echo "Cleanup scheduled for: {$task->start_at}\n";
        });
        $this->assertMatchesRegularExpression('/^Cleanup scheduled for: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/', $printed);
        $this->assertEqualsWithDelta(time() + 7200, $task->start_at->getTimestamp(), 60);
        $this->assertTrue($task->isPending());
        $this->assertSame('low', $task->priority);
        $this->assertEquals(['clean_cache' => true, 'older_than_days' => 30], $task->meta);
        $this->assertContains($task->id, sTask::getPendingTasks(limit: 500)->pluck('id'));
        $this->client->cancel($task->id);
    }

    public function testConfigurationCheck(): void
    {
        $printed = $this->output(function () {
            // Check if sTask is installed
            if (sTask::installed()) {
                // sTask is available
                $task = \Stask\Facades\sTask::create(
                    identifier: 'demo',
                    action: 'noop',
                    data: []
                );
                echo "created #{$task->id}\n";
            } else {
                echo "fallback\n";
            }
            $version = sTask::version();
            echo "sTask version: {$version}\n";
        });
        $this->assertMatchesRegularExpression('/^created #\d+\nsTask version: \d+\.\d+\.\d+\S*\n$/', $printed);
        $this->assertStringContainsString($this->client->version(), $printed);
    }
}
