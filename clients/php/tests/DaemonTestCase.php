<?php

declare(strict_types=1);

namespace Stask\Tests;

use PHPUnit\Framework\TestCase;
use Stask\Client;
use Stask\Facades\sTask;

/**
 * A test against the daemon named by STASK_URL / STASK_TOKEN; the facade uses the same
 * client.
 */
abstract class DaemonTestCase extends TestCase
{
    protected Client $client;

    protected function setUp(): void
    {
        $this->client = new Client(getenv('STASK_URL'), getenv('STASK_TOKEN'), pollInterval: 0.05);
        sTask::setClient($this->client);
    }

    protected function tearDown(): void
    {
        sTask::setClient(null);
    }

    /** Writes a CSV into the daemon's storage; returns its absolute path. @param list<list<scalar>> $rows */
    protected function writeCsv(string $relative, array $rows): string
    {
        $path = storage_path($relative);
        if (!is_dir(dirname($path))) {
            mkdir(dirname($path), 0777, true);
        }
        $file = fopen($path, 'wb');
        foreach ($rows as $row) {
            fputcsv($file, $row);
        }
        fclose($file);
        return $path;
    }

    /** Runs a seed sample and returns what it printed. */
    protected function output(callable $sample): string
    {
        ob_start();
        try {
            $sample();
        } finally {
            $printed = (string) ob_get_clean();
        }
        return $printed;
    }
}
