<?php

declare(strict_types=1);

namespace Stask\Laravel;

use Illuminate\Support\ServiceProvider;
use Stask\Client;
use Stask\Facades\sTask;

/**
 * Registers the client in a Laravel (or Evolution CMS) container: the `stask` singleton built
 * from `config('stask')` (`stask.url`, `stask.token`, ...), `Stask\Client` resolving to it,
 * and the `sTask` alias of the facade. `php artisan vendor:publish --tag=stask` copies
 * `config/stask.php` into the application.
 */
class StaskServiceProvider extends ServiceProvider
{
    /** The package's config file. */
    public const CONFIG = __DIR__ . '/../../config/stask.php';

    public function register(): void
    {
        $this->mergeConfigFrom(self::CONFIG, 'stask');
        $this->app->singleton(sTask::BINDING, function ($app) {
            return Client::fromConfig((array) $app['config']->get('stask', []));
        });
        $this->app->alias(sTask::BINDING, Client::class);
        // The seed's "Publish Assets" step made `sTask` an alias; a class alias does the same
        // without Laravel's AliasLoader (absent from bare Illuminate containers).
        if (!class_exists('sTask', false)) {
            class_alias(sTask::class, 'sTask');
        }
    }

    public function boot(): void
    {
        if (method_exists($this->app, 'configPath')) {
            $this->publishes([self::CONFIG => $this->app->configPath('stask.php')], 'stask');
        }
    }

    /** @return list<string> */
    public function provides(): array
    {
        return [sTask::BINDING, Client::class];
    }
}
