<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Facades\sTask;
use Stask\Models\sWorker;

/**
 * The seed's "Worker Management" samples as written (with `use Stask\...`), with scope
 * `scommerce` as `commerce` and worker `old_import` as `email_campaign` (the example
 * plugins'); an unknown worker's error is in ErrorsTest. A library is taken out of
 * plugins.d/ and put back (STASK_PLUGINS names that folder) so that clean-orphaned and
 * discover have something to do.
 */
final class SeedWorkersTest extends DaemonTestCase
{
    public function testCleanOrphanedThenDiscoverThenRescan(): void
    {
        $plugins = getenv('STASK_PLUGINS');
        $this->assertNotFalse($plugins, 'STASK_PLUGINS names the daemon\'s plugins.d/');
        $library = "$plugins/email_campaign.so";
        $kept = sys_get_temp_dir() . '/stask-php-email_campaign-' . getmypid() . '.so';
        $this->assertTrue(rename($library, $kept));
        try {
            // The scan sees the file gone: the worker is orphaned.
            sTask::discoverWorkers();
            $this->assertSame('orphaned', sTask::worker('email_campaign')->state);

            $printed = $this->output(function () {
                // Remove workers whose classes no longer exist
                $deleted = sTask::cleanOrphanedWorkers();
                echo "Removed {$deleted} orphaned workers\n";
            });
            $this->assertSame("Removed 1 orphaned workers\n", $printed);
            $this->assertNotContains('email_campaign', sTask::getWorkers(activeOnly: false)->pluck('identifier'));
        } finally {
            // Back in place in one step (a rename), as a deploy would.
            copy($kept, "$library.tmp");
            rename("$library.tmp", $library);
            unlink($kept);
        }

        $printed = $this->output(function () use (&$registered) {
            // Discover and register new workers
            $registered = sTask::discoverWorkers();
            echo "Found and registered " . count($registered) . " new workers:\n";
            foreach ($registered as $worker) {
                echo "- {$worker->identifier} ({$worker->scope})\n";
            }
        });
        // The daemon's own watcher registers a new file after 300 ms of quiet; discover ran
        // right after the file appeared, so it is the one that registered it, unless this
        // process was held up that long.
        if (count($registered) === 1) {
            $this->assertSame("Found and registered 1 new workers:\n- email_campaign (marketing)\n", $printed);
        } else {
            $this->assertSame("Found and registered 0 new workers:\n", $printed);
        }
        $this->assertSame('loaded', sTask::worker('email_campaign')->state, 'registered again either way');

        $printed = $this->output(function () {
            // Update metadata for existing workers
            $updated = sTask::rescanWorkers();
            echo "Updated " . count($updated) . " workers\n";
        });
        $this->assertSame("Updated 4 workers\n", $printed);
    }

    public function testListAllWorkers(): void
    {
        $printed = $this->output(function () {
            // Get all workers
            $allWorkers = sTask::getWorkers(activeOnly: false);
            echo "Total workers: " . $allWorkers->count() . "\n\n";
            foreach ($allWorkers as $worker) {
                echo "Worker: {$worker->identifier}\n";
                echo " Scope: {$worker->scope}\n";
                echo " Title: {$worker->title}\n";
                echo " Status: " . ($worker->active ? 'Active' : 'Inactive') . "\n";
                echo " Class: {$worker->class}\n";
                echo "\n";
            }
        });
        $this->assertStringStartsWith("Total workers: 4\n\n", $printed);
        $product = sTask::worker('product');
        $this->assertStringContainsString("Worker: product\n Scope: commerce\n Title: Products\n Status: Active\n Class: {$product->class}\n\n", $printed);
        $this->assertStringContainsString("Worker: email_campaign\n Scope: marketing\n Title: Email campaign\n", $printed);
        $this->assertSame(4, substr_count($printed, 'Worker: '));
    }

    public function testFilterWorkersByScope(): void
    {
        $printed = $this->output(function () {
            // Get only commerce workers
            $commerceWorkers = sWorker::byScope('commerce')
                ->active()
                ->ordered()
                ->get();
            foreach ($commerceWorkers as $worker) {
                echo "{$worker->identifier}: {$worker->title}\n";
            }
        });
        $this->assertSame("product: Products\n", $printed);
        sTask::deactivateWorker('product');
        try {
            $this->assertCount(0, sWorker::byScope('commerce')->active()->ordered()->get());
        } finally {
            sTask::activateWorker('product');
        }
    }

    public function testActivateDeactivateWorkers(): void
    {
        $printed = $this->output(function () {
            // Activate a worker
            sTask::activateWorker('product');
            echo "Product worker activated\n";
            // Deactivate a worker
            sTask::deactivateWorker('email_campaign');
            echo "Old import worker deactivated\n";
        });
        $this->assertSame("Product worker activated\nOld import worker deactivated\n", $printed);
        $this->assertTrue(sTask::worker('product')->active);
        $this->assertFalse(sTask::worker('email_campaign')->active);
        $this->assertSame(['demo', 'product', 'system'], $this->sortedActive());

        // Or directly via model
        $worker = sWorker::where('identifier', 'email_campaign')->first();
        $worker->active = true;
        $worker->save();
        $this->assertTrue(sTask::worker('email_campaign')->active, 'save() activated it');
        $this->assertSame(['demo', 'email_campaign', 'product', 'system'], $this->sortedActive());
        $this->assertFalse($worker->save(), 'nothing changed, nothing written');
    }

    /** @return list<string> */
    private function sortedActive(): array
    {
        $list = sTask::getWorkers(activeOnly: true)->pluck('identifier');
        sort($list);
        return $list;
    }
}
