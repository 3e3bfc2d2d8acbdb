//! The only code that draws: the native Update / Later / Skip dialog (a
//! scrolling window when there are release notes), the terminal question, the terminal progress bar, and how sizes are shown.
//! The library never prints otherwise; it logs through `log`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
#[cfg(feature = "dialog")]
use std::sync::Mutex;

use crate::config::{Ask, Restart};
use crate::error::human_size;
use crate::fetch::ProgressFn;
use crate::update::Available;

/// What the user answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Install it now.
    Update,
    /// "Remind me later": ask again after a while.
    Later,
    /// "Skip this version": not until a newer one.
    Skip,
    /// Nobody was asked (the settings said no, or there is nobody to ask).
    NotAsked,
}

/// Asks the user, as `ask` says, whether to install `available`.
/// The release notes (Markdown or plain text) are fetched (`notes`) only
/// when someone is asked.
pub(crate) fn ask(
    ask: Ask,
    restart: Restart,
    available: &Available,
    notes: impl FnOnce() -> Option<String>,
) -> Answer {
    let question = Question { available, restart };
    match ask {
        Ask::AssumeYes => Answer::Update,
        Ask::Never => Answer::NotAsked,
        Ask::Dialog => ask_dialog(&question, notes),
        Ask::Terminal => ask_terminal(&question, notes),
        Ask::Auto => {
            let dialog = dialog_available();
            if cfg!(feature = "dialog") && dialog.is_ok() {
                ask_dialog(&question, notes)
            } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
                ask_terminal(&question, notes)
            } else if available.is_required() {
                log::info!("nobody to ask, and the update is required: updating");
                Answer::Update
            } else {
                let why = match dialog {
                    Err(why) if cfg!(feature = "dialog") => why,
                    _ => "built without the `dialog` feature".into(),
                };
                log::info!(
                    "nobody to ask ({why}, and no terminal): not updating now; the app may offer {} in its own interface",
                    available.release.version
                );
                Answer::NotAsked
            }
        }
    }
}

/// The whole question as text, as the dialog and the terminal show it:
/// what is offered, the release notes (as plain text), and what happens
/// to the running program.
pub(crate) fn question_text(
    restart: Restart,
    available: &Available,
    notes: impl FnOnce() -> Option<String>,
) -> String {
    let question = Question { available, restart };
    let (title, notes) = self::question(available, notes);
    let mut text = title;
    if let Some(notes) = notes {
        text.push_str("\n\n");
        text.push_str(notes.trim_end());
    }
    text.push_str("\n\n");
    text.push_str(&question.restart_note());
    text
}

/// What is asked about: the update, and when it takes effect.
struct Question<'a> {
    available: &'a Available,
    restart: Restart,
}

impl Question<'_> {
    /// What happens to the running program when the user says yes.
    fn restart_note(&self) -> String {
        let program = &self.available.release.program;
        match self.restart {
            Restart::Now => {
                format!("{program} restarts to finish updating, once it is downloaded.")
            }
            Restart::NextLaunch => {
                format!("It is installed the next time {program} starts.")
            }
            Restart::OnExit => format!("It is installed when you close {program}."),
        }
    }
}

/// How a stage's progress is shown, and how the user can cancel it. A
/// window is closed (and gone) when this is dropped.
pub(crate) struct Progress {
    /// What the download reports to.
    pub report: Option<ProgressFn>,
    /// Set when the user cancels.
    pub cancel: Option<Arc<AtomicBool>>,
    #[cfg(feature = "dialog")]
    window: Option<Arc<Mutex<crate::os::ProgressWindow>>>,
}

impl Progress {
    /// The app's own progress callback (it shows progress itself).
    pub(crate) fn given(report: ProgressFn) -> Progress {
        Progress::shown_by(Some(report))
    }

    fn shown_by(report: Option<ProgressFn>) -> Progress {
        Progress {
            report,
            cancel: None,
            #[cfg(feature = "dialog")]
            window: None,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        #[cfg(feature = "dialog")]
        if let Some(window) = self.window.take() {
            if let Ok(mut window) = window.lock() {
                window.close();
            }
        }
    }
}

/// What shows the progress of staging `available`, as `ask` says: the
/// progress window where the question is asked in a dialog, a bar on the
/// terminal where it is asked there, else nothing.
pub(crate) fn progress(ask: Ask, available: &Available) -> Progress {
    #[cfg(feature = "dialog")]
    if matches!(ask, Ask::Dialog) || matches!(ask, Ask::Auto) && dialog_available().is_ok() {
        if let Some(shown) = progress_window(available) {
            return shown;
        }
    }
    #[cfg(feature = "progress-bar")]
    if matches!(ask, Ask::Auto | Ask::Terminal) && std::io::stderr().is_terminal() {
        return Progress::shown_by(Some(terminal_progress()));
    }
    let _ = (ask, available);
    Progress::shown_by(None)
}

/// The progress window: version, bytes so far and in all, speed, time
/// left, and Cancel.
#[cfg(feature = "dialog")]
fn progress_window(available: &Available) -> Option<Progress> {
    let release = &available.release;
    let what = format!("{} {}", release.program, release.version);
    let cancel = Arc::new(AtomicBool::new(false));
    let window = crate::os::progress_window(
        &format!("Updating {}", release.program),
        &format!("Downloading {what}…"),
        cancel.clone(),
    )?;
    let window = Arc::new(Mutex::new(window));
    let shown = window.clone();
    // The speed is measured from the first report on (a download continued
    // from before has bytes that did not arrive now).
    let first = Mutex::new(None);
    let report: ProgressFn = Arc::new(move |done, total| {
        let now = std::time::Instant::now();
        let (base, since) = first
            .lock()
            .map(|mut f| *f.get_or_insert((done, now)))
            .unwrap_or((done, now));
        let text = progress_text(&what, done, total, done.saturating_sub(base), now - since);
        // 100 % only once the release is unpacked and verified too.
        let percent = total
            .filter(|t| *t > 0)
            .map(|t| (done.min(t) * 99 / t) as u8);
        if let Ok(mut window) = shown.lock() {
            window.show(percent, &text);
        }
    });
    Some(Progress {
        report: Some(report),
        cancel: Some(cancel),
        window: Some(window),
    })
}

#[cfg(feature = "dialog")]
/// The progress window's line: `what`, `done` of `total` bytes, the speed
/// of the `moved` bytes that came in `elapsed`, and the time left.
fn progress_text(
    what: &str,
    done: u64,
    total: Option<u64>,
    moved: u64,
    elapsed: std::time::Duration,
) -> String {
    if total == Some(done) {
        return format!(
            "Downloaded {what} ({}); verifying and unpacking it…",
            human_size(done)
        );
    }
    let mut text = format!("Downloading {what}: {}", human_size(done));
    if let Some(total) = total {
        text.push_str(&format!(" of {}", human_size(total)));
    }
    let seconds = elapsed.as_secs_f64();
    if moved > 0 && seconds >= 0.5 {
        let rate = moved as f64 / seconds;
        text.push_str(&format!(", {}/s", human_size(rate as u64)));
        if let Some(total) = total {
            let left = (total.saturating_sub(done) as f64 / rate).ceil() as u64;
            text.push_str(&format!(
                ", about {} left",
                humantime::format_duration(std::time::Duration::from_secs(left))
            ));
        }
    }
    text
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
    let notes = notes()
        .map(|markdown| printable(&plain_text(&markdown)))
        .filter(|text| !text.trim().is_empty());
    (title, notes)
}

/// `text` without what could take over a terminal or disguise the text:
/// control characters (escape sequences, carriage returns) and the
/// direction overrides of Unicode; tabs and line ends stay.
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| {
            matches!(c, '\n' | '\t')
                || !(c.is_control()
                    || ('\u{202a}'..='\u{202e}').contains(c)
                    || ('\u{2066}'..='\u{2069}').contains(c))
        })
        .collect()
}

/// Markdown (or plain text, which reads the same) as plain text for a
/// terminal or a dialog: headings underlined, list items bulleted, links
/// followed by their address, emphasis and markup dropped.
pub(crate) fn plain_text(markdown: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut heading: Option<(usize, char)> = None;
    let mut link: Vec<String> = Vec::new();
    let newline = |out: &mut String| {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
    };
    let blank = |out: &mut String| {
        newline(out);
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
    };
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                blank(&mut out);
                let underline = if level == pulldown_cmark::HeadingLevel::H1 {
                    '='
                } else {
                    '-'
                };
                heading = Some((out.len(), underline));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((start, underline)) = heading.take() {
                    let width = out[start..].chars().count();
                    out.push('\n');
                    out.extend(std::iter::repeat_n(underline, width));
                }
                out.push('\n');
            }
            Event::Start(Tag::Paragraph) if lists.is_empty() => blank(&mut out),
            Event::End(TagEnd::Paragraph) => newline(&mut out),
            Event::Start(Tag::List(first)) => {
                if lists.is_empty() {
                    blank(&mut out);
                }
                lists.push(first);
            }
            Event::End(TagEnd::List(_)) => {
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                newline(&mut out);
                let depth = lists.len().saturating_sub(1);
                out.push_str(&"  ".repeat(depth));
                match lists.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("- "),
                }
            }
            Event::Start(Tag::CodeBlock(_)) => blank(&mut out),
            Event::Start(Tag::Link { dest_url, .. }) => link.push(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(url) = link.pop() {
                    if !url.is_empty() && !out.ends_with(url.as_str()) {
                        out.push_str(&format!(" ({url})"));
                    }
                }
            }
            Event::Text(text) | Event::Code(text) => out.push_str(&text),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Rule => {
                blank(&mut out);
                out.push_str("----\n");
            }
            Event::Html(html) | Event::InlineHtml(html) => out.push_str(&html),
            _ => {}
        }
    }
    out.trim().to_owned()
}

fn ask_terminal(question_: &Question<'_>, notes: impl FnOnce() -> Option<String>) -> Answer {
    let available = question_.available;
    let (title, notes) = question(available, notes);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{title}");
    if let Some(notes) = notes {
        // All of it: the question comes after, so it stays on screen.
        let _ = writeln!(err);
        for line in notes.lines() {
            let _ = writeln!(err, "  {line}");
        }
        let _ = writeln!(err);
    }
    if available.is_required() {
        let _ = writeln!(
            err,
            "This update is required: {} {} may not be kept. Updating now. {}",
            available.release.program,
            available.current,
            question_.restart_note()
        );
        return Answer::Update;
    }
    let _ = writeln!(err, "{}", question_.restart_note());
    let _ = write!(
        err,
        "Update now? [y]es, [l]ater (remind me), [s]kip this version: "
    );
    let _ = err.flush();
    let mut answer = String::new();
    // No input at all (closed): nobody answered.
    if std::io::stdin().read_line(&mut answer).unwrap_or(0) == 0 {
        return Answer::NotAsked;
    }
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Update,
        "s" | "skip" => Answer::Skip,
        // Enter, "later", "no": ask again later.
        _ => Answer::Later,
    }
}

/// Whether a native dialog can be shown, or why not: always on Windows
/// and macOS; on other systems a display is needed, and `zenity` (or
/// KDE's `kdialog`) on the PATH to draw it.
fn dialog_available() -> Result<(), String> {
    if cfg!(any(windows, target_os = "macos")) {
        return Ok(());
    }
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if !display {
        return Err("no display".into());
    }
    if crate::os::dialog_program().is_none() {
        return Err(
            "a display, but neither zenity nor kdialog on the PATH to show the dialog with (install zenity)"
                .into(),
        );
    }
    Ok(())
}

/// How many lines of notes a message dialog (which cannot scroll) shows.
#[cfg(feature = "dialog")]
const DIALOG_LINES: usize = 20;

#[cfg(feature = "dialog")]
fn ask_dialog(question_: &Question<'_>, notes: impl FnOnce() -> Option<String>) -> Answer {
    let available = question_.available;
    let (title, notes) = question(available, notes);
    let title = format!("{title}\n{}", question_.restart_note());
    let window = format!("Update {}", available.release.program);
    const UPDATE: &str = "Update";
    const LATER: &str = "Remind me later";
    const SKIP: &str = "Skip this version";
    // Notes scroll in a text window, the buttons below them.
    if let (Some(notes), false) = (&notes, available.is_required()) {
        let text = format!("{title}\n\n{notes}\n");
        match crate::os::dialog(&window, &text, &[UPDATE, LATER, SKIP], true) {
            Some(0) => return Answer::Update,
            Some(1) => return Answer::Later,
            Some(_) => return Answer::Skip,
            None => {}
        }
    }
    // A message dialog: the notes cut to what fits, so the buttons stay
    // on screen.
    let mut text = title;
    if let Some(notes) = notes {
        let lines: Vec<&str> = notes.lines().collect();
        text.push_str("\n\n");
        text.push_str(&lines[..lines.len().min(DIALOG_LINES)].join("\n"));
        if lines.len() > DIALOG_LINES {
            text.push_str(&format!("\n… ({} more lines)", lines.len() - DIALOG_LINES));
        }
    }
    if cfg!(windows) && !available.is_required() {
        // Windows' plain message box labels its buttons Yes, No, Cancel.
        text.push_str(&format!("\n\nYes: {UPDATE}. No: {SKIP}. Cancel: {LATER}."));
    }
    // The desktop's own dialog where leapfrog can run one (zenity: it never
    // outlives the app), else rfd's message box.
    if available.is_required() {
        if crate::os::dialog(&window, &text, &[UPDATE], false).is_some() {
            return Answer::Update;
        }
    } else {
        match crate::os::dialog(&window, &text, &[UPDATE, LATER, SKIP], false) {
            Some(0) => return Answer::Update,
            Some(1) => return Answer::Later,
            Some(_) => return Answer::Skip,
            None => {}
        }
    }
    let dialog = rfd::MessageDialog::new()
        .set_title(window)
        .set_description(text);
    if available.is_required() {
        // No "Later": the running version may not be kept.
        dialog
            .set_buttons(rfd::MessageButtons::OkCustom(UPDATE.into()))
            .show();
        return Answer::Update;
    }
    let answer = dialog
        .set_buttons(rfd::MessageButtons::YesNoCancelCustom(
            UPDATE.into(),
            SKIP.into(),
            LATER.into(),
        ))
        .show();
    match answer {
        rfd::MessageDialogResult::Custom(ref s) if s == UPDATE => Answer::Update,
        rfd::MessageDialogResult::Ok | rfd::MessageDialogResult::Yes => Answer::Update,
        rfd::MessageDialogResult::Custom(ref s) if s == SKIP => Answer::Skip,
        rfd::MessageDialogResult::No => Answer::Skip,
        rfd::MessageDialogResult::Custom(ref s) if s == LATER => Answer::Later,
        // Windows' plain message box: Cancel is "Remind me later".
        rfd::MessageDialogResult::Cancel if cfg!(windows) => Answer::Later,
        // The dialog could not be shown: nobody answered.
        _ => Answer::NotAsked,
    }
}

#[cfg(not(feature = "dialog"))]
fn ask_dialog(question: &Question<'_>, notes: impl FnOnce() -> Option<String>) -> Answer {
    log::warn!("built without the `dialog` feature: asking on the terminal instead");
    ask_terminal(question, notes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "dialog")]
    #[test]
    fn the_progress_line_says_bytes_speed_and_time_left() {
        use std::time::Duration;
        let line = progress_text(
            "demo 1.1.0",
            3_000_000,
            Some(13_000_000),
            2_000_000,
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "Downloading demo 1.1.0: 3.0 MB of 13.0 MB, 1.0 MB/s, about 10s left"
        );
        // Too early to measure a speed: bytes only.
        let line = progress_text("demo 1.1.0", 1_000_000, None, 0, Duration::ZERO);
        assert_eq!(line, "Downloading demo 1.1.0: 1.0 MB");
        let line = progress_text(
            "demo 1.1.0",
            13_000_000,
            Some(13_000_000),
            1,
            Duration::from_secs(1),
        );
        assert!(
            line.starts_with("Downloaded demo 1.1.0 (13.0 MB); verifying"),
            "{line}"
        );
    }

    #[test]
    fn markdown_reads_as_text() {
        let text = plain_text(
            "# Title\n\nSome *stress* and **more**.\n\n## Changes\n\n- one\n- [two](https://x.example/2)\n  - nested\n\n1. first\n2. `second`\n",
        );
        assert_eq!(
            text,
            "Title\n=====\n\nSome stress and more.\n\nChanges\n-------\n\n- one\n- two (https://x.example/2)\n  - nested\n\n1. first\n2. second"
        );
        // Plain text stays as it was written.
        assert_eq!(plain_text("line one\nline two"), "line one\nline two");
    }

    #[test]
    fn notes_cannot_drive_the_terminal() {
        let hostile = "fine\u{1b}[2J\u{1b}]0;title\u{7}\r\u{202e}desrever\tend\n";
        assert_eq!(printable(hostile), "fine[2J]0;titledesrever\tend\n");
    }
}
