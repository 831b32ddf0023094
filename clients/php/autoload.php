<?php

// The package without Composer: `require 'path/to/clients/php/autoload.php';`.
// Maps `Stask\` to src/ as composer.json's PSR-4 entry does.
spl_autoload_register(static function (string $class): void {
    if (!str_starts_with($class, 'Stask\\')) {
        return;
    }
    $relative = str_replace('\\', '/', substr($class, strlen('Stask\\')));
    $file = __DIR__ . '/src/' . $relative . '.php';
    if (is_file($file)) {
        require $file;
    }
});
