<?php
// What the original product's PHP model does with s_tasks on MySQL/MariaDB, through PDO as
// Laravel's Eloquent does it (mysqlnd, default emulated prepares): `insert` writes a task the
// way `sTaskModel::create([...])` does (only the original's columns, timestamps as
// 'Y-m-d H:i:s' strings, meta JSON-encoded); `read ID` prints a row's columns with their PHP
// types as JSON.
//
// Usage: php model_rows.php insert|read [ID]
// Environment: STASK_PDO_DSN (e.g. mysql:host=127.0.0.1;port=3306;dbname=x), STASK_PDO_USER,
// STASK_PDO_PASSWORD, STASK_TABLE_PREFIX.

$pdo = new PDO(
    getenv('STASK_PDO_DSN'),
    getenv('STASK_PDO_USER') ?: 'root',
    getenv('STASK_PDO_PASSWORD') ?: '',
    [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]
);
// Laravel's default time zone; the daemon reads and writes its DATETIME columns in UTC.
$pdo->exec("SET time_zone = '+00:00'");
$table = (getenv('STASK_TABLE_PREFIX') ?: '') . 's_tasks';

switch ($argv[1] ?? '') {
    case 'insert':
        $now = gmdate('Y-m-d H:i:s');
        $row = [
            'identifier' => 'demo',
            'action' => 'run',
            'status' => 10,
            'priority' => 'low',
            'start_at' => $now,
            'meta' => json_encode(['steps' => 2, 'sleep_ms' => 1, 'result' => 'made by PHP']),
            'updated_at' => $now,
            'created_at' => $now,
        ];
        $columns = implode(', ', array_map(fn ($c) => "`$c`", array_keys($row)));
        $marks = implode(', ', array_fill(0, count($row), '?'));
        $insert = $pdo->prepare("insert into `$table` ($columns) values ($marks)");
        $insert->execute(array_values($row));
        echo json_encode(['id' => $pdo->lastInsertId()]), "\n";
        break;
    case 'read':
        $select = $pdo->prepare("select * from `$table` where `id` = ?");
        $select->execute([(int) $argv[2]]);
        $task = $select->fetch(PDO::FETCH_ASSOC);
        if ($task === false) {
            fwrite(STDERR, "no task {$argv[2]}\n");
            exit(1);
        }
        $typed = [];
        foreach ($task as $column => $value) {
            $typed[$column] = ['type' => gettype($value), 'value' => $value];
        }
        echo json_encode($typed), "\n";
        break;
    default:
        fwrite(STDERR, "usage: php model_rows.php insert|read [ID]\n");
        exit(2);
}
