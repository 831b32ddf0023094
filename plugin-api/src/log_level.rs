//! The level of a task log line, and the integer that carries it through the ABI.

use serde::{Deserialize, Serialize};

/// How serious a task log line is. Crosses the ABI ([`crate::abi::HostContext::log`]) and is
/// stored (`s_task_logs.level`) as its `u8` value; the values are part of the interface and
/// never change.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "u8", from = "u8")]
pub enum LogLevel {
    /// Information (0).
    Info = 0,
    /// A warning (1).
    Warning = 1,
    /// An error (2).
    Error = 2,
}

impl LogLevel {
    /// The level an integer stands for. A value no level has (from a plugin built against a
    /// newer interface, say) is read as [`LogLevel::Error`], the most visible level, so that
    /// the line is not overlooked.
    pub fn from_u8(value: u8) -> LogLevel {
        match value {
            0 => LogLevel::Info,
            1 => LogLevel::Warning,
            _ => LogLevel::Error,
        }
    }

    /// The integer that carries this level through the ABI and into storage.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl From<u8> for LogLevel {
    fn from(value: u8) -> LogLevel {
        LogLevel::from_u8(value)
    }
}

impl From<LogLevel> for u8 {
    fn from(level: LogLevel) -> u8 {
        level.as_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::LogLevel;

    #[test]
    fn every_level_survives_the_integer_and_unknown_values_read_as_error() {
        for level in [LogLevel::Info, LogLevel::Warning, LogLevel::Error] {
            assert_eq!(LogLevel::from_u8(level.as_u8()), level);
        }
        assert_eq!(
            [LogLevel::Info, LogLevel::Warning, LogLevel::Error].map(LogLevel::as_u8),
            [0, 1, 2],
            "the stored values are part of the interface"
        );
        for unknown in [3, 7, u8::MAX] {
            assert_eq!(LogLevel::from_u8(unknown), LogLevel::Error);
        }
    }

    #[test]
    fn the_json_form_is_the_integer() {
        assert_eq!(serde_json::to_string(&LogLevel::Warning).unwrap(), "1");
        assert_eq!(
            serde_json::from_str::<LogLevel>("9").unwrap(),
            LogLevel::Error
        );
    }
}
