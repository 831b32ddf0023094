//! The task list's query string as `GET /stask/tasks?...` parses it: any request target gets a
//! filter or a 4xx, and a filter always pages within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stask_host::clock::rfc3339;
use stask_host::fuzzing::task_query;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    match task_query(&format!("/stask/tasks?{query}")) {
        Ok(filter) => {
            assert!((1..=500).contains(&filter.limit), "{filter:?}");
            assert!(
                filter.offset >= 0 && filter.offset % filter.limit == 0,
                "{filter:?}"
            );
            for at in [filter.created_from, filter.created_to]
                .into_iter()
                .flatten()
            {
                assert!(!rfc3339(at).is_empty(), "time {at} cannot be shown");
            }
        }
        Err((status, message)) => {
            assert!(matches!(status, 400 | 422), "{status}: {message}");
            assert!(!message.is_empty());
        }
    }
});
