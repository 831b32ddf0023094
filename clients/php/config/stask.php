<?php

// sTask client settings (publish with `php artisan vendor:publish --tag=stask`).
return [
    // The daemon's base URL (`stask serve` listens on 127.0.0.1:7878 by default).
    'url' => env('STASK_URL', 'http://127.0.0.1:7878'),
    // An API token: `stask token create --name my-site` prints it.
    'token' => env('STASK_TOKEN'),
    // Seconds a request may take, and to connect.
    'timeout' => (float) env('STASK_TIMEOUT', 30),
    'connect_timeout' => (float) env('STASK_CONNECT_TIMEOUT', 5),
    // Seconds between two reads while waiting for a task.
    'poll_interval' => 0.2,
    // A cron installation (no daemon): the `stask` executable and its home folder, for
    // sTask::processPendingTasks() to run `stask process`. Leave null with a daemon.
    'binary' => env('STASK_BIN'),
    'home' => env('STASK_HOME'),
];
