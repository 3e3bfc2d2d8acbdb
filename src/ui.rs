//! The only code that draws: the native Update / Later dialog, the
//! terminal question, the terminal progress bar, and how sizes are shown.
//! The library never prints otherwise; it logs through `log`.

use std::io::{IsTerminal, Write};

use crate::config::Ask;
use crate::error::human_size;
use crate::fetch::ProgressFn;
use crate::update::Available;

/// Asks the user, as `ask` says, whether to install `available`.
/// The release notes are fetched (`notes`) only when someone is asked.
pub(crate) fn ask(ask: Ask, available: &Available, notes: impl FnOnce() -> Option<String>) -> bool {
    match ask {
        Ask::AssumeYes => true,
        Ask::Never => false,
        Ask::Dialog => ask_dialog(available, notes),
        Ask::Terminal => ask_terminal(available, notes),
        Ask::Auto => {
            if cfg!(feature = "dialog") && dialog_available() {
                ask_dialog(available, notes)
            } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                ask_terminal(available, notes)
            } else if available.is_required() {
                log::info!("nobody to ask, and the update is required: updating");
                true
            } else {
                log::info!("no display and no terminal to ask on: not updating now");
                false
            }
        }
    }
}

/// A progress bar on the terminal, when the app asks there and has one.
pub(crate) fn progress(ask: Ask) -> Option<ProgressFn> {
    #[cfg(feature = "progress-bar")]
    if matches!(ask, Ask::Auto | Ask::Terminal) && std::io::stderr().is_terminal() {
        return Some(terminal_progress());
    }
    let _ = ask;
    None
}

fn question(
    available: &Available,
    notes: impl FnOnce() -> Option<String>,
) -> (String, Option<String>) {
    let r = &available.release;
    let title = format!(
        "{} {} is {} (you have {}, download {})",
        r.program,
        r.version,
        if available.is_required() {
            "required"
        } else {
            "available"
        },
        available.current,
        r.size.map_or_else(|| "unknown size".to_owned(), human_size)
    );
    (title, notes())
}

fn ask_terminal(available: &Available, notes: impl FnOnce() -> Option<String>) -> bool {
    let (title, notes) = question(available, notes);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{title}");
    if let Some(notes) = notes {
        for line in notes.lines().take(20) {
            let _ = writeln!(err, "  {line}");
        }
    }
    if available.is_required() {
        let _ = writeln!(
            err,
            "This update is required: {} {} may not be kept. Updating now.",
            available.release.program, available.current
        );
        return true;
    }
    let _ = write!(err, "Update now? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Whether a native dialog can be shown: always on Windows and macOS; on
/// other systems rfd shows message dialogs through `zenity`, so a display
/// and `zenity` on the PATH are needed.
fn dialog_available() -> bool {
    if cfg!(any(windows, target_os = "macos")) {
        return true;
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    display
        && std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("zenity").is_file())
        })
}

#[cfg(feature = "dialog")]
fn ask_dialog(available: &Available, notes: impl FnOnce() -> Option<String>) -> bool {
    let (title, notes) = question(available, notes);
    let mut text = title;
    if let Some(notes) = notes {
        text.push_str("\n\n");
        text.push_str(&notes.lines().take(30).collect::<Vec<_>>().join("\n"));
    }
    let dialog = rfd::MessageDialog::new()
        .set_title(format!("Update {}", available.release.program))
        .set_description(text);
    if available.is_required() {
        // No "Later": the running version may not be kept.
        dialog
            .set_buttons(rfd::MessageButtons::OkCustom("Update".into()))
            .show();
        return true;
    }
    let answer = dialog
        .set_buttons(rfd::MessageButtons::OkCancelCustom(
            "Update".into(),
            "Later".into(),
        ))
        .show();
    matches!(answer, rfd::MessageDialogResult::Custom(ref s) if s == "Update")
        || matches!(answer, rfd::MessageDialogResult::Ok)
}

#[cfg(not(feature = "dialog"))]
fn ask_dialog(available: &Available, notes: impl FnOnce() -> Option<String>) -> bool {
    log::warn!("built without the `dialog` feature: asking on the terminal instead");
    ask_terminal(available, notes)
}

#[cfg(feature = "progress-bar")]
fn terminal_progress() -> ProgressFn {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{decimal_bytes}/{decimal_total_bytes} [{bar:30}] {decimal_bytes_per_sec} {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    std::sync::Arc::new(move |done, total| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
        if Some(done) == total {
            bar.finish_and_clear();
        }
    })
}
