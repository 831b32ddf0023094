<?php

declare(strict_types=1);

namespace Stask\Tests;

use Illuminate\Config\Repository;
use Illuminate\Container\Container;
use Illuminate\Foundation\Application;
use Illuminate\Support\Facades\Facade;
use Illuminate\Support\ServiceProvider;
use Stask\Client;
use Stask\Exceptions\UnauthorizedException;
use Stask\Facades\sTask;
use Stask\Laravel\StaskServiceProvider;

// Debian's Laravel components (php-laravel-framework), without Composer.
require_once 'Illuminate/autoload.php';

/**
 * Inside an application built on Laravel components: the provider binds the client from
 * `config('stask')`, the facade resolves it from the container, and the `sTask` alias works
 * as the seed's published alias did.
 */
final class LaravelTest extends DaemonTestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        // The container, not a client set by hand, is what these tests are about.
        sTask::setClient(null);
    }

    protected function tearDown(): void
    {
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication(null);
        Container::setInstance(null);
        parent::tearDown();
    }

    /** A bare container with a config repository, as a CMS on Illuminate components has. */
    private function container(array $stask): Container
    {
        $app = new Container();
        Container::setInstance($app);
        $app->instance('config', new Repository(['stask' => $stask]));
        Facade::setFacadeApplication($app);
        (new StaskServiceProvider($app))->register();
        return $app;
    }

    public function testTheFacadeResolvesTheConfiguredClientFromTheContainer(): void
    {
        $app = $this->container(['url' => getenv('STASK_URL'), 'token' => getenv('STASK_TOKEN')]);
        $client = $app->make('stask');
        $this->assertInstanceOf(Client::class, $client);
        $this->assertSame($client, $app->make(Client::class), 'one singleton under both names');
        $this->assertSame($client, sTask::getClient());
        $this->assertSame(getenv('STASK_URL'), $client->url(), 'stask.url');
        // The defaults of config/stask.php are merged under what the application set.
        $this->assertSame(30.0, (float) $app['config']->get('stask.timeout'));

        $stats = sTask::getStats();
        $this->assertSame($this->client->getStats()['total'], $stats['total']);
        $task = sTask::create(identifier: 'demo', action: 'noop', data: ['via' => 'container']);
        $this->assertTrue($this->client->wait($task->id, 30)->isCompleted());
    }

    public function testTheAliasWorks(): void
    {
        $this->container(['url' => getenv('STASK_URL'), 'token' => getenv('STASK_TOKEN')]);
        $this->assertTrue(class_exists('sTask'));
        $this->assertSame(sTask::class, (new \ReflectionClass('sTask'))->getName());
        $task = \sTask::create(identifier: 'demo', action: 'noop');
        $this->assertSame('demo', $task->identifier);
        $this->assertContains('product', \sTask::getWorkers(activeOnly: false)->pluck('identifier'));
    }

    public function testTheTokenComesFromStaskToken(): void
    {
        $this->container(['url' => getenv('STASK_URL'), 'token' => 'stask_wrong']);
        try {
            sTask::getStats();
            $this->fail('the configured (wrong) token is the one sent');
        } catch (UnauthorizedException $e) {
            $this->assertSame(401, $e->getStatus());
        }
        // Swapping the binding is seen at once: the facade does not cache the container's client.
        Container::getInstance()->instance('stask', new Client(getenv('STASK_URL'), getenv('STASK_TOKEN')));
        $this->assertIsInt(sTask::getStats()['total']);
    }

    public function testInAFoundationApplicationWithPublishableConfig(): void
    {
        $base = sys_get_temp_dir() . '/stask-laravel-' . getmypid();
        @mkdir("$base/config", 0777, true);
        $app = new Application($base);
        $app->instance('config', new Repository(['stask' => ['url' => getenv('STASK_URL'), 'token' => getenv('STASK_TOKEN')]]));
        Facade::setFacadeApplication($app);
        $app->register(StaskServiceProvider::class);
        $app->boot();

        $this->assertTrue($app->bound('stask'));
        $this->assertSame($app->make('stask'), sTask::getClient());
        $this->assertTrue(sTask::installed());
        $this->assertSame($this->client->version(), sTask::version());
        $published = ServiceProvider::pathsToPublish(StaskServiceProvider::class, 'stask');
        $this->assertSame([realpath(StaskServiceProvider::CONFIG) => "$base/config/stask.php"], array_combine(array_map('realpath', array_keys($published)), array_values($published)));
        $config = require StaskServiceProvider::CONFIG;
        $this->assertSame(['url', 'token', 'timeout', 'connect_timeout', 'poll_interval', 'binary', 'home'], array_keys($config));
    }
}
