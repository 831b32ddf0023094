//! The original product's PHP model on MariaDB: a task row inserted by PHP's PDO the way
//! `sTaskModel::create([...])` writes it (only the original's columns) is claimed and run by
//! the daemon, and the finished row reads back in PHP with the original's column types.
//!
//! Real PHP (Debian's `php-cli` with `php-mysql`; `tests/setup.sh` installs them) against the
//! local MariaDB, in every `cargo test --workspace`.

use serde_json::Value;
use stask_tests::{Home, MysqlDatabase, ServerDatabase};
use std::process::Command;

/// Runs tests/php/model_rows.php against the home's database; its JSON output.
fn php(db: &MysqlDatabase, args: &[&str]) -> Value {
    let script = stask_tests::workspace().join("tests/php/model_rows.php");
    let out = Command::new("php")
        .arg(&script)
        .args(args)
        .env(
            "STASK_PDO_DSN",
            format!("mysql:host=127.0.0.1;port=3306;dbname={}", db.name()),
        )
        .output()
        .expect("php runs (tests/setup.sh installs php-cli and php-mysql)");
    assert!(
        out.status.success(),
        "php {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn a_task_the_php_model_inserts_runs_and_reads_back_with_the_original_types() {
    let db = MysqlDatabase::create();
    let home = Home::on_server_database(&["demo"], ServerDatabase::Mysql(db.clone()));
    let d = home.serve();

    let inserted = php(&db, &["insert"]);
    // PDO's lastInsertId is a string.
    let id: i64 = inserted["id"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{inserted}"));
    let finished = d.wait_finished(id);
    assert_eq!(finished["status"], "completed", "{finished}");
    assert_eq!(finished["priority"], "low", "{finished}");

    let row = php(&db, &["read", &id.to_string()]);
    let typed = |column: &str| {
        let cell = &row[column];
        (
            cell["type"].as_str().unwrap_or("missing").to_owned(),
            cell["value"].clone(),
        )
    };
    for column in ["id", "status", "progress", "attempts", "max_attempts"] {
        assert_eq!(typed(column).0, "integer", "{column}: {row}");
    }
    assert_eq!(typed("status").1, 30, "{row}");
    assert_eq!(typed("progress").1, 100, "{row}");
    assert_eq!(typed("attempts").1, 1, "{row}");
    for column in ["message", "result", "priority", "identifier", "action"] {
        assert_eq!(typed(column).0, "string", "{column}: {row}");
    }
    assert!(
        typed("result")
            .1
            .as_str()
            .is_some_and(|r| r.contains("made by PHP")),
        "{row}"
    );
    assert_eq!(typed("priority").1, "low", "{row}");
    // DATETIME columns read as 'Y-m-d H:i:s[.v]' strings; the finish is after the start.
    let datetime = |column: &str| {
        let (kind, value) = typed(column);
        assert_eq!(kind, "string", "{column}: {row}");
        let text = value.as_str().unwrap().to_owned();
        chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap_or_else(|e| panic!("{column} = {text}: {e}"))
    };
    assert!(datetime("finished_at") >= datetime("start_at"), "{row}");
    assert!(datetime("updated_at") >= datetime("created_at"), "{row}");
    // meta is JSON text the model decodes.
    let meta: Value =
        serde_json::from_str(typed("meta").1.as_str().unwrap()).expect("meta is JSON");
    assert_eq!(meta["result"], "made by PHP");
    assert_eq!(d.terminate(), 0);
}
