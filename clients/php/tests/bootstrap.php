<?php

// PHPUnit bootstrap: the package without Composer, plus the few CMS helpers the seed's
// samples call (`storage_path()`, `evo()`), mapped onto the daemon under test.
//
// Environment (tests/e2e/php_client.rs sets it):
//   STASK_URL, STASK_TOKEN   the daemon and an API token
//   STASK_STORAGE            that daemon's storage/ folder (the samples' storage_path())
//   STASK_BIN, STASK_CRON_HOME  the stask binary and a home without a daemon (cron tests)

declare(strict_types=1);

require __DIR__ . '/../autoload.php';
require __DIR__ . '/DaemonTestCase.php';

foreach (['STASK_URL', 'STASK_TOKEN'] as $required) {
    if (getenv($required) === false || getenv($required) === '') {
        fwrite(STDERR, "set $required: these tests run against a real daemon (tests/e2e/php_client.rs starts one)\n");
        exit(2);
    }
}

if (!function_exists('storage_path')) {
    /** The daemon's storage/ folder (the CMS's storage_path() in the seed's samples). */
    function storage_path(string $path = ''): string
    {
        $root = getenv('STASK_STORAGE') ?: sys_get_temp_dir();
        return rtrim($root, '/') . ($path === '' ? '' : '/' . ltrim($path, '/'));
    }
}

if (!function_exists('now')) {
    /** Laravel's now(): a Carbon time (Debian's Illuminate Support brings Carbon). */
    function now(): \Illuminate\Support\Carbon
    {
        require_once 'Illuminate/Support/autoload.php';
        return \Illuminate\Support\Carbon::now();
    }
}

if (!function_exists('evo')) {
    /** The CMS's `evo()` as far as the samples use it: the logged-in manager user. */
    function evo(): object
    {
        return new class () {
            public function getLoginUserID(): int
            {
                return 7;
            }
        };
    }
}
