<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Client;
use Stask\Exceptions\ConflictException;
use Stask\Exceptions\InvalidException;
use Stask\Facades\sTask;

/**
 * The cron installation: no daemon on the home, `processPendingTasks` runs `stask process`
 * there (the pass cron runs). STASK_BIN is the binary, STASK_CRON_HOME a home no daemon
 * holds, STASK_DAEMON_HOME the one the test daemon holds.
 */
final class CronTest extends DaemonTestCase
{
    private string $bin;
    private string $home;

    protected function setUp(): void
    {
        parent::setUp();
        foreach (['STASK_BIN', 'STASK_CRON_HOME', 'STASK_DAEMON_HOME'] as $name) {
            $this->assertNotFalse(getenv($name), "$name is set (tests/e2e/php_client.rs sets it)");
        }
        $this->bin = getenv('STASK_BIN');
        $this->home = getenv('STASK_CRON_HOME');
    }

    public function testProcessPendingTasksRunsOnePassInBatches(): void
    {
        $this->assertSame(0, $this->counts()['pending'], 'a fresh home');
        foreach ([1, 2, 3] as $i) {
            $this->createWithCli('demo', 'run', ['steps' => 1, 'sleep_ms' => 1, 'result' => "cron $i"]);
        }
        $this->assertSame([0, 0, 3], array_values($this->counts()), 'three pending');

        $cron = new Client(getenv('STASK_URL'), getenv('STASK_TOKEN'), binary: $this->bin, home: $this->home);
        sTask::setClient($cron);
        $this->assertSame(2, sTask::processPendingTasks(batchSize: 2));
        $this->assertSame([2, 0, 1], array_values($this->counts()));
        $this->assertSame(1, sTask::processPendingTasks());
        $this->assertSame([3, 0, 0], array_values($this->counts()));
        $this->assertSame(0, sTask::processPendingTasks(batchSize: 5), 'nothing is left');

        $this->expectException(InvalidException::class);
        sTask::processPendingTasks(batchSize: 0);
    }

    public function testAPassOnAHomeADaemonHoldsIsAConflict(): void
    {
        $cron = new Client(getenv('STASK_URL'), getenv('STASK_TOKEN'), binary: $this->bin, home: getenv('STASK_DAEMON_HOME'));
        try {
            $cron->processPendingTasks();
            $this->fail('the daemon holds its home');
        } catch (ConflictException $e) {
            $this->assertStringContainsString('already running', $e->getMessage());
            $this->assertStringContainsString(' process', $e->getMessage(), 'the command is named');
        }
    }

    /** `stask task create` in the cron home. @param array<string, mixed> $data */
    private function createWithCli(string $worker, string $action, array $data): void
    {
        $this->assertMatchesRegularExpression('/^\d+$/', trim($this->cli(['task', 'create', $worker, $action, '--data', json_encode($data)])));
    }

    /** completed, failed, pending counts of the cron home (`stask stats --json`). @return array<string, int> */
    private function counts(): array
    {
        $stats = json_decode($this->cli(['stats', '--json']), true);
        return ['completed' => $stats['completed'], 'failed' => $stats['failed'], 'pending' => $stats['pending']];
    }

    /** @param list<string> $args */
    private function cli(array $args): string
    {
        $process = proc_open(array_merge([$this->bin, '--home', $this->home], $args), [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        $out = stream_get_contents($pipes[1]);
        $err = stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $code = proc_close($process);
        $this->assertSame(0, $code, "stask " . implode(' ', $args) . ": $err");
        return (string) $out;
    }
}
