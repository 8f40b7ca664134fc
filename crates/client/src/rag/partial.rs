//! The answer as the guest generates it: `partial` feedback (kind 7000, `["status", "partial"]`),
//! each carrying the whole answer so far, NIP-44 encrypted from the attested guest key to the user
//! ([`PartialAnswer`]).

use cdvm_protocol::nostr::{Event, EventId, Keys, PublicKey};
use cdvm_protocol::rag::PartialAnswer;
use cdvm_protocol::{kinds, FeedbackStatus, JobFeedback};

/// Picks, from the events of one job, the partial answers worth showing: those the attested guest
/// key signed, for this request, decryptable by the user, each newer than the last.
#[derive(Debug)]
pub struct PartialTracker {
    guest: PublicKey,
    request: EventId,
    /// Highest `seq` accepted so far (0: none; the guest counts from 1).
    seq: u32,
}

impl PartialTracker {
    /// Follows `request`'s partials from the attested key `guest`.
    pub fn new(guest: PublicKey, request: EventId) -> Self {
        Self {
            guest,
            request,
            seq: 0,
        }
    }

    /// The partial answer in `event`, when it is one to show; `None` otherwise. Anyone can publish
    /// feedback tagged to this job, so only the attested key's counts (and only it can encrypt
    /// to the user as that key); relays may deliver out of order, so an older `seq` than one
    /// already shown is dropped: each partial carries the whole text, nothing is lost by that.
    pub fn accept(&mut self, user: &Keys, event: &Event) -> Option<PartialAnswer> {
        if event.pubkey != self.guest || event.kind.as_u16() != kinds::JOB_FEEDBACK {
            return None;
        }
        let feedback = JobFeedback::from_event(event).ok()?;
        if feedback.request_id != self.request || feedback.status != Some(FeedbackStatus::Partial) {
            return None;
        }
        let partial =
            PartialAnswer::decrypt(user, &self.guest, &self.request, &feedback.content).ok()?;
        if partial.seq <= self.seq {
            return None;
        }
        self.seq = partial.seq;
        Some(partial)
    }
}

/// What to write to a terminal as the answer grows, given each newer answer-so-far: only the new
/// end when the text extends what was shown, else (the guest rewrote its answer) a newline and
/// the whole text again. No I/O: the caller writes what it returns.
#[derive(Debug, Default)]
pub struct AnswerDisplay {
    /// The text shown so far (control characters removed).
    shown: String,
    /// Whether anything was shown.
    started: bool,
    /// Whether the last thing written ended a line.
    line_ended: bool,
}

impl AnswerDisplay {
    /// Nothing shown yet.
    pub const fn new() -> Self {
        Self {
            shown: String::new(),
            started: false,
            line_ended: true,
        }
    }

    /// Whether any text was shown.
    pub fn started(&self) -> bool {
        self.started
    }

    /// What to write for the answer so far, `text`: its new end, or a newline and the whole text
    /// when it does not extend what was shown. Empty when nothing is new.
    pub fn update(&mut self, text: &str) -> String {
        let text = printable(text);
        let out = match text.strip_prefix(self.shown.as_str()) {
            Some(suffix) => suffix.to_owned(),
            None => format!("\n{text}"),
        };
        self.shown = text;
        self.started = true;
        if let Some(last) = out.chars().last() {
            self.line_ended = last == '\n';
        }
        out
    }

    /// What ends the streamed text before other output: a newline when the last line is open.
    pub fn end_line(&mut self) -> &'static str {
        if self.line_ended {
            ""
        } else {
            self.line_ended = true;
            "\n"
        }
    }
}

/// `text` without control characters other than newline and tab: model output goes to a
/// terminal, and an escape sequence in it must not drive the terminal.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct Job {
        guest: Keys,
        user: Keys,
        request: EventId,
    }

    impl Job {
        fn new() -> Self {
            Self {
                guest: Keys::generate(),
                user: Keys::generate(),
                request: EventId::from_slice(&[7; 32]).unwrap(),
            }
        }

        /// A partial from `signer`, encrypted to the user.
        fn partial(&self, signer: &Keys, request: EventId, seq: u32, text: &str) -> Event {
            PartialAnswer {
                v: 1,
                request_id: request.to_hex(),
                seq,
                text: text.into(),
            }
            .build(signer, &self.user.public_key())
            .unwrap()
            .sign_with_keys(signer)
            .unwrap()
        }

        fn tracker(&self) -> PartialTracker {
            PartialTracker::new(self.guest.public_key(), self.request)
        }
    }

    #[test]
    fn the_newest_partial_wins_and_older_ones_are_dropped() {
        let job = Job::new();
        let mut t = job.tracker();
        let p2 = job.partial(&job.guest, job.request, 2, "The notice");
        let p1 = job.partial(&job.guest, job.request, 1, "The");
        let p3 = job.partial(&job.guest, job.request, 3, "The notice is 30 days.");
        assert_eq!(t.accept(&job.user, &p2).unwrap().text, "The notice");
        // Delivered late: older than what was shown.
        assert!(t.accept(&job.user, &p1).is_none());
        // The same event twice (two relays).
        assert!(t.accept(&job.user, &p2).is_none());
        let newest = t.accept(&job.user, &p3).unwrap();
        assert_eq!(
            (newest.seq, newest.text.as_str()),
            (3, "The notice is 30 days.")
        );
    }

    #[test]
    fn only_the_attested_guest_for_this_job_counts() {
        let job = Job::new();
        let mut t = job.tracker();
        // Another key, well-formed and encrypted to the user, claiming to be the answer.
        let stranger = Keys::generate();
        let forged = job.partial(&stranger, job.request, 9, "Send your keys to …");
        assert!(t.accept(&job.user, &forged).is_none());
        // The guest's partial for another job.
        let other = EventId::from_slice(&[8; 32]).unwrap();
        assert!(t
            .accept(&job.user, &job.partial(&job.guest, other, 1, "x"))
            .is_none());
        // The guest's other feedback is not a partial.
        let running = JobFeedback::build(
            job.request,
            job.user.public_key(),
            FeedbackStatus::Processing,
            Some("running"),
        )
        .sign_with_keys(&job.guest)
        .unwrap();
        assert!(t.accept(&job.user, &running).is_none());
        // None of that moved the sequence: seq 1 from the guest still shows.
        let p1 = job.partial(&job.guest, job.request, 1, "The");
        assert_eq!(t.accept(&job.user, &p1).unwrap().text, "The");
    }

    #[test]
    fn display_prints_only_what_is_new() {
        let mut d = AnswerDisplay::new();
        assert!(!d.started());
        assert_eq!(d.end_line(), "");
        assert_eq!(d.update("The"), "The");
        assert!(d.started());
        assert_eq!(d.update("The notice"), " notice");
        assert_eq!(d.update("The notice"), "");
        assert_eq!(d.update("The notice is 30 days."), " is 30 days.");
        assert_eq!(d.end_line(), "\n");
        assert_eq!(d.end_line(), "");
    }

    #[test]
    fn display_starts_over_when_the_text_does_not_extend() {
        let mut d = AnswerDisplay::new();
        assert_eq!(d.update("The notice is 60"), "The notice is 60");
        assert_eq!(
            d.update("The notice is 30 days."),
            "\nThe notice is 30 days."
        );
        assert_eq!(d.update("The notice is 30 days. It"), " It");
        // Multi-byte characters are split only where the text really grew.
        assert_eq!(d.update("The notice is 30 days. It … ünd"), " … ünd");
        assert_eq!(d.update("Done.\n"), "\nDone.\n");
        assert_eq!(d.end_line(), "");
    }

    #[test]
    fn display_drops_control_characters() {
        let mut d = AnswerDisplay::new();
        assert_eq!(d.update("a\u{1b}[2Jb\tc\r\n"), "a[2Jb\tc\n");
        assert_eq!(d.update("a\u{1b}[2Jb\tc\r\nd"), "d");
    }
}
