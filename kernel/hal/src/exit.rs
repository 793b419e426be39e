//! Exit codes shared by every platform, so that a supervisor, the test harness and a human can
//! tell *why* an image stopped from the exit status alone.

/// Why the program ended. The numeric values are stable: harnesses match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// `main` returned `Ok`.
    Success = 0,
    /// `main` returned an error.
    AppError = 1,
    /// A Rust panic.
    Panic = 2,
    /// A CPU exception (page fault, invalid opcode, stack overflow, ...).
    CpuException = 3,
    /// The machine cannot run the image: too little memory, no memory map, bad boot protocol.
    BootFailure = 4,
    /// The boot command line was rejected (unknown key, malformed value, `help`).
    Usage = 64,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Decodes a numeric code, if it is one of ours.
    pub fn from_code(code: u8) -> Option<ExitCode> {
        use ExitCode::*;
        [Success, AppError, Panic, CpuException, BootFailure, Usage]
            .into_iter()
            .find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode;

    #[test]
    fn every_exit_code_round_trips_through_its_number() {
        for code in 0..=255u8 {
            if let Some(e) = ExitCode::from_code(code) {
                assert_eq!(e.code(), code);
            }
        }
        assert_eq!(ExitCode::from_code(64), Some(ExitCode::Usage));
        assert_eq!(ExitCode::from_code(7), None);
    }
}
