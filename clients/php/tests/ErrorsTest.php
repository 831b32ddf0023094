<?php

declare(strict_types=1);

namespace Stask\Tests;

use Stask\Client;
use Stask\Exceptions\BadRequestException;
use Stask\Exceptions\ConflictException;
use Stask\Exceptions\InvalidException;
use Stask\Exceptions\NotFoundException;
use Stask\Exceptions\StaskException;
use Stask\Exceptions\UnauthorizedException;
use Stask\Exceptions\UnavailableException;
use Stask\Facades\sTask;

/**
 * Errors: each kind of failure is its own exception, with the server's code and message.
 */
final class ErrorsTest extends DaemonTestCase
{
    public function testUnknownWorkerIsNotFoundWithTheServersMessage(): void
    {
        try {
            // The seed's sample deactivates 'old_import', a worker this daemon does not have.
            sTask::deactivateWorker('old_import');
            $this->fail('an unknown worker cannot be deactivated');
        } catch (NotFoundException $e) {
            $this->assertSame(404, $e->getStatus());
            $this->assertSame(404, $e->getServerCode());
            $this->assertStringContainsString("unknown worker 'old_import'", $e->getServerMessage());
            $this->assertStringContainsString($e->getServerMessage(), $e->getMessage());
            $this->assertStringContainsString('/stask/workers/old_import/deactivate', $e->getUrl());
            $this->assertInstanceOf(StaskException::class, $e);
        }
        try {
            sTask::create(identifier: 'nope', action: 'import');
            $this->fail('an unknown worker cannot get tasks');
        } catch (NotFoundException $e) {
            // The message lists the workers there are.
            $this->assertMatchesRegularExpression("/unknown worker 'nope'.*demo.*product/", $e->getMessage());
        }
        try {
            sTask::create(identifier: 'product', action: 'explode');
            $this->fail('an unknown action cannot run');
        } catch (NotFoundException $e) {
            $this->assertStringContainsString('import', $e->getMessage());
            $this->assertStringContainsString('export', $e->getMessage());
        }
        $this->expectException(NotFoundException::class);
        $this->client->task(987654321);
    }

    public function testBadTokenIsUnauthorized(): void
    {
        $client = new Client(getenv('STASK_URL'), 'stask_not-a-real-token');
        try {
            $client->getStats();
            $this->fail('a made-up token has no permission');
        } catch (UnauthorizedException $e) {
            $this->assertSame(401, $e->getStatus());
            $this->assertSame(401, $e->getServerCode());
            $this->assertNotEmpty($e->getServerMessage());
        }
        // Health and version need no token; installed() says the daemon is there.
        $this->assertTrue($client->installed());
        $this->assertSame($this->client->version(), $client->version());
        $this->expectException(UnauthorizedException::class);
        (new Client(getenv('STASK_URL'), ''))->workers();
    }

    public function testDaemonDownIsUnavailableNamingTheUrl(): void
    {
        // A port nothing listens on: bind one, note it, close it.
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        $address = stream_socket_get_name($socket, false);
        fclose($socket);
        $url = "http://$address";
        $client = new Client($url, 'any', connectTimeout: 2);
        try {
            $client->getStats();
            $this->fail('nothing listens there');
        } catch (UnavailableException $e) {
            $this->assertSame(0, $e->getStatus());
            $this->assertStringContainsString("$url/stask/stats", $e->getMessage());
            $this->assertSame("$url/stask/stats", $e->getUrl());
            $this->assertNotNull($e->getPrevious(), 'the transport error is kept');
            $this->assertStringContainsString('curl error', $e->getPrevious()->getMessage());
        }
        $this->assertFalse($client->installed(), 'installed() answers false, never throws');

        // The facade gives the same, with a default client built from the environment.
        sTask::setClient(null);
        $previous = getenv('STASK_URL');
        putenv("STASK_URL=$url");
        try {
            sTask::getStats();
            $this->fail('the facade uses STASK_URL');
        } catch (UnavailableException $e) {
            $this->assertStringContainsString($url, $e->getMessage());
        } finally {
            putenv("STASK_URL=$previous");
            sTask::setClient(null);
        }
    }

    public function testInvalidValuesConflictsAndBadRequests(): void
    {
        try {
            sTask::create(identifier: 'demo', action: 'noop', priority: 'urgent');
            $this->fail('urgent is no priority');
        } catch (InvalidException $e) {
            $this->assertSame(422, $e->getStatus());
            $this->assertStringContainsString('urgent', $e->getServerMessage());
        }
        try {
            $this->client->pendingTasks(limit: 0);
            $this->fail('limit 0 is out of range');
        } catch (InvalidException $e) {
            $this->assertStringContainsString('limit', $e->getServerMessage());
        }
        try {
            $this->client->create('demo', 'noop', ['priority' => 'high']);
            $this->fail('a control key in the data is refused before sending');
        } catch (InvalidException $e) {
            $this->assertSame(0, $e->getStatus());
            $this->assertStringContainsString("'priority'", $e->getMessage());
        }

        $task = $this->client->wait($this->client->create('demo', 'noop')->id, 30);
        try {
            $this->client->cancel($task->id);
            $this->fail('a finished task cannot be cancelled');
        } catch (ConflictException $e) {
            $this->assertSame(409, $e->getStatus());
        }
        try {
            $this->client->retry($task->id);
            $this->fail('a completed task is not retried');
        } catch (ConflictException $e) {
            $this->assertSame(409, $e->getServerCode());
        }
        $running = $this->client->create('demo', 'run', ['steps' => 100, 'sleep_ms' => 50]);
        try {
            $this->client->delete($running->id);
            $this->fail('an unfinished task is not deleted');
        } catch (ConflictException $e) {
            $this->assertStringContainsString((string) $running->id, $e->getMessage());
        }
        $target = sys_get_temp_dir() . '/stask-php-no-download-' . $running->id;
        try {
            $this->client->download($running->id, $target);
            $this->fail('an unfinished task has no download');
        } catch (ConflictException $e) {
            $this->assertStringContainsString('only completed tasks have a download', $e->getServerMessage());
            $this->assertFileDoesNotExist($target, 'no error page is left where the file would be');
            $this->assertSame([], glob(sys_get_temp_dir() . '/.stask-download-*'), 'nor a partial file');
        }
        $this->client->cancel($running->id);
        $this->client->wait($running->id, 30);

        try {
            $this->client->updateWorkerSettings('email_campaign', ['from' => 5]);
            $this->fail('a declared string setting keeps its type');
        } catch (InvalidException $e) {
            $this->assertSame("invalid settings: 'from' must be a string, got number", $e->getServerMessage());
        }
        // A task id the API refuses outright: 400.
        $this->expectException(BadRequestException::class);
        $this->client->task(0);
    }
}
