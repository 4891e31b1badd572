//! One line of progress on stderr, rewritten in place, shown only when
//! stderr is a terminal (so pipes and logs stay clean).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use strata_shm::{format_size, ProgressHook};

/// Shows `msg` as the progress line; an empty message clears it.
pub fn show(quiet: bool, msg: &str) {
    if !quiet && std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K{msg}");
        let _ = std::io::stderr().flush();
    }
}

/// A hook that shows how far creating a segment has got in building its
/// huge pages, and clears the line when done.
pub fn creation(quiet: bool) -> ProgressHook {
    huge_pages(quiet, "")
}

/// A hook that shows how far the building of 2 MiB pages for `what` (a
/// segment when empty) has got, and clears the line when done.
pub fn huge_pages(quiet: bool, what: &str) -> ProgressHook {
    let prefix = if what.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    };
    Arc::new(move |done, total| {
        if done < total {
            show(
                quiet,
                &format!(
                    "{prefix}building 2 MiB pages: {} of {}",
                    format_size(done),
                    format_size(total)
                ),
            );
        } else {
            show(quiet, "");
        }
    })
}
