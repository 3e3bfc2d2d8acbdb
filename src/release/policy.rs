//! Release policy, decided by each install from the one signed manifest:
//! the channel it follows, staged rollouts (by its random install id),
//! the publisher's floor (a minimum version, critical releases) and the
//! platform it runs on.

use std::time::{SystemTime, UNIX_EPOCH};

use semver::Version;

use super::manifest::{BrokenLine, Manifest, Release};

/// The target this program was built for, as release lines name it:
/// `linux-x86_64`, `windows-x86_64`, `macos-aarch64`, … (the operating
/// system and the CPU architecture as Rust names them, `macos` for Apple's).
/// A release line for `linux` (the system alone) fits every Linux build;
/// one with no target fits all.
pub fn this_target() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

pub(crate) fn valid_target(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The `target=` of a release line that could not be read, if it names a
/// valid one.
pub(crate) fn target_of(line: &str) -> Option<String> {
    let mut targets = line
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("target="));
    match (targets.next(), targets.next()) {
        // Two targets: the line could hide from either; it breaks all.
        (Some(target), None) if valid_target(target) => Some(target.to_owned()),
        _ => None,
    }
}

/// The channel of a release that names none, and of an app that follows none.
pub const DEFAULT_CHANNEL: &str = "stable";

/// Who asks for an update: the channel an install follows and its install
/// id (for staged rollouts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// The channel followed; `None` is [`DEFAULT_CHANNEL`].
    pub channel: Option<String>,
    /// The install's id (hex); `None` takes every release whatever its
    /// rollout (a publisher's own tools).
    pub install_id: Option<String>,
    /// The platform (`linux-x86_64`, …); `None` takes releases for every
    /// target (a publisher's own tools).
    pub target: Option<String>,
    /// The app asked to move to its channel's newest release even when it
    /// is lower than the running version (an explicit change of channel);
    /// never set by itself.
    pub downgrade: bool,
    /// The user asked for this check ("Check for updates"): a release in a
    /// staged rollout is offered whatever the install's bucket, unless it
    /// is halted (0 % now).
    pub by_user: bool,
    /// The time rollout schedules are read at (`None`: this machine's
    /// clock); never later than the manifest's signing time.
    pub now: Option<SystemTime>,
}

impl Audience {
    /// The channel followed.
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }

    /// Whether `release` is for this platform (or `target` is `None`).
    pub fn fits(&self, release: &Release) -> bool {
        self.target
            .as_deref()
            .is_none_or(|t| release.fit(t).is_some())
    }

    /// Whether `release` is on the channel followed and for this platform.
    pub fn follows(&self, release: &Release) -> bool {
        release.channel() == self.channel() && self.fits(release)
    }
}

impl Release {
    /// The channel the release is on.
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }

    /// The install's bucket for this release, in [0, 1): the first 32 bits
    /// of sha256(install id ‖ the release's salt) over 2^32. The salt is
    /// `program/version`, so each release draws new buckets, and raising a
    /// release's share keeps every install that was in.
    pub fn bucket(&self, install_id: &str) -> f64 {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(install_id.as_bytes());
        hash.update(format!("{}/{}", self.program, self.version).as_bytes());
        let digest = hash.finalize();
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        f64::from(first) / 4_294_967_296.0
    }

    /// The share of installs the release is offered to at `at` (seconds
    /// since the Unix epoch): the schedule's step then (none before its
    /// first), else `rollout`; `None` is everyone.
    pub fn percent_at(&self, at: u64) -> Option<u8> {
        if self.schedule.is_empty() {
            return self.rollout;
        }
        Some(
            self.schedule
                .iter()
                .take_while(|step| step.at <= at)
                .last()
                .map_or(0, |step| step.percent),
        )
        .filter(|p| *p < 100)
    }

    /// Whether the staged rollout offers this release to the install with
    /// `install_id`: its bucket is below the release's share (0 % halts, no
    /// `rollout` is everyone). `at` as for [`percent_at`](Self::percent_at).
    pub fn offered_to(&self, install_id: &str, at: u64) -> bool {
        if self.critical {
            return true;
        }
        match self.percent_at(at) {
            None => true,
            Some(percent) => self.bucket(install_id) < f64::from(percent) / 100.0,
        }
    }

    /// The floors this line sets: its `min_version`, and its own version
    /// when it is critical and not withdrawn (a withdrawn critical release
    /// requires nothing; the floor it set with `min_version` stands).
    fn floor_set(&self) -> impl Iterator<Item = &Version> {
        self.min_version
            .iter()
            .chain((self.critical && !self.yanked).then_some(&self.version))
    }

    /// Whether the release is in a staged rollout at all (a share or a
    /// schedule), so that an install's id decides it.
    pub fn staged(&self) -> bool {
        self.rollout.is_some() || !self.schedule.is_empty()
    }

    /// Whether a leapfrog from before release policy would misread the
    /// line: it is for one target, on another channel than `stable`, or in
    /// a staged rollout. [`Manifest::render`] hides such lines from them.
    pub fn misread_by_older_clients(&self) -> bool {
        self.target.is_some() || self.channel() != DEFAULT_CHANNEL || self.staged()
    }

    /// How well the release fits `target` (an `os-arch` name): 0 made for
    /// it, 1 for its operating system in general, 2 for every platform;
    /// `None` not for it.
    pub fn fit(&self, target: &str) -> Option<u8> {
        match &self.target {
            None => Some(2),
            Some(t) if t == target => Some(0),
            Some(t) if target.split('-').next() == Some(t.as_str()) => Some(1),
            Some(_) => None,
        }
    }
}

impl Manifest {
    /// The time (seconds since the Unix epoch) rollout schedules are read
    /// at: `now`, but never later than the signing time. A client whose
    /// clock runs ahead is not let in early; a schedule's step reaches the
    /// clients when the manifest is next signed after it (`leapfrog
    /// refresh`, from a scheduled job).
    pub fn schedule_time(&self, now: SystemTime) -> u64 {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signed = self
            .signed
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        signed.map_or(now, |signed| now.min(signed))
    }

    /// The release of `program` to move to from `current`: the newest one
    /// newer than `current` that is not withdrawn. A pre-release is only
    /// offered to a program that runs a pre-release itself or when
    /// `prereleases` is set. When `downgrade_if_yanked` is set and `current`
    /// itself is withdrawn, the newest release not withdrawn is offered even
    /// when it is older.
    pub fn update_for(
        &self,
        program: &str,
        current: &Version,
        prereleases: bool,
        downgrade_if_yanked: bool,
    ) -> Option<&Release> {
        self.update_for_install(
            program,
            current,
            &Audience::default(),
            prereleases,
            downgrade_if_yanked,
        )
    }

    /// [`update_for`](Self::update_for) for one install: only releases on
    /// its channel and for its platform, and, of those in a staged rollout,
    /// only ones offered to its install id. An install left out of the
    /// newest release's rollout is offered the newest release it is in.
    /// Only a `signed` manifest can require an update (below its floor) or
    /// take an install to a lower version (its running one withdrawn, or a
    /// change of channel the app asked for).
    pub fn update_for_install(
        &self,
        program: &str,
        current: &Version,
        audience: &Audience,
        prereleases: bool,
        signed: bool,
    ) -> Option<&Release> {
        let wants_pre = prereleases || !current.pre.is_empty();
        // Every line this install could take: not withdrawn, its channel,
        // its platform, pre-releases only when wanted; `offered` adds the
        // staged rollout.
        let takeable = || {
            self.releases_of(program)
                .filter(|r| !r.yanked)
                .filter(move |r| wants_pre || r.version.pre.is_empty())
                .filter(|r| audience.follows(r))
        };
        let at = self.schedule_time(audience.now.unwrap_or_else(SystemTime::now));
        let offered = || {
            takeable().filter(move |r| {
                if audience.by_user {
                    // Asked for by the user: in unless halted.
                    return r.critical || r.percent_at(at) != Some(0);
                }
                audience
                    .install_id
                    .as_deref()
                    .is_none_or(|id| r.offered_to(id, at))
            })
        };
        // The newest version; of its lines, the one made for this target
        // before one for the system in general, before one for all.
        let fit = |r: &Release| audience.target.as_deref().and_then(|t| r.fit(t));
        let order =
            |a: &&Release, b: &&Release| a.version.cmp(&b.version).then(fit(b).cmp(&fit(a)));
        // Below the floor of a signed manifest, the update is required: the
        // newest offered release at the floor or above, else the lowest
        // one there whatever its rollout (a halted release stays halted
        // when another reaches the floor).
        if signed {
            if let Some(floor) = self.floor_for(program, audience, wants_pre) {
                if current < floor {
                    let at_floor = |r: &&Release| &r.version >= floor && &r.version > current;
                    let chosen = offered().filter(at_floor).max_by(order).or_else(|| {
                        takeable()
                            .filter(at_floor)
                            .min_by(|a, b| a.version.cmp(&b.version).then(fit(a).cmp(&fit(b))))
                    });
                    if chosen.is_some() {
                        return chosen;
                    }
                }
            }
        }
        let newer = offered().filter(|r| &r.version > current).max_by(order);
        if newer.is_some() {
            return newer;
        }
        // The running version withdrawn (its own line, for this platform):
        // the newest release not withdrawn, below it.
        let running_yanked = self
            .releases_of(program)
            .any(|r| &r.version == current && r.yanked && audience.fits(r));
        if signed && (running_yanked || audience.downgrade) {
            return offered().filter(|r| &r.version < current).max_by(order);
        }
        None
    }

    /// The release lines whose notes an install moving from `current` to
    /// `to` is shown: one for each version it could have taken in between
    /// (its channel and platform, not withdrawn, pre-releases only when it
    /// takes them), `to` included, newest first.
    pub fn notes_between(
        &self,
        program: &str,
        audience: &Audience,
        prereleases: bool,
        current: &Version,
        to: &Version,
    ) -> Vec<&Release> {
        let fit = |r: &Release| audience.target.as_deref().and_then(|t| r.fit(t));
        let mut lines: Vec<&Release> = self
            .releases_of(program)
            .filter(|r| !r.yanked && audience.follows(r))
            .filter(|r| prereleases || r.version.pre.is_empty() || &r.version == to)
            .filter(|r| &r.version > current && &r.version <= to)
            .collect();
        // Newest first; of one version's lines, the best fit.
        lines.sort_by(|a, b| b.version.cmp(&a.version).then(fit(a).cmp(&fit(b))));
        lines.dedup_by(|later, kept| later.version == kept.version);
        lines
    }

    /// The lowest version of `program` that installs on `channel` may keep
    /// running: the highest `min_version` any of its releases there sets
    /// (so a later release can never lower it), and the version of the
    /// newest critical release. A withdrawn release's floor stands: what
    /// it says of older versions stays true.
    pub fn floor(&self, program: &str, channel: &str) -> Option<&Version> {
        self.releases_of(program)
            .filter(|r| r.channel() == channel)
            .flat_map(Release::floor_set)
            .max()
    }

    /// [`floor`](Self::floor) for one install: only the lines it could take
    /// count (its platform; pre-releases only when it takes them), so a
    /// floor set for another platform never makes its update required.
    pub fn floor_for(
        &self,
        program: &str,
        audience: &Audience,
        prereleases: bool,
    ) -> Option<&Version> {
        self.releases_of(program)
            .filter(|r| audience.follows(r))
            .filter(|r| prereleases || r.version.pre.is_empty())
            .flat_map(Release::floor_set)
            .filter(|v| prereleases || v.pre.is_empty())
            .max()
    }

    /// The broken release lines that would have concerned `target`: for it,
    /// or for its operating system in general.
    pub fn broken_for<'a>(
        &'a self,
        program: &'a str,
        target: &'a str,
    ) -> impl Iterator<Item = &'a BrokenLine> + 'a {
        self.broken.iter().filter(move |b| {
            b.program == program
                && (b.target == target || target.split('-').next() == Some(b.target.as_str()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// 1,000 install ids, spread as random ones are (sha256 of a counter),
    /// but the same in every run.
    fn ids() -> Vec<String> {
        use sha2::Digest;
        (0..1000u32)
            .map(|i| hex::encode(&sha2::Sha256::digest(i.to_be_bytes())[..16]))
            .collect()
    }

    fn rolled(version: &str, percent: Option<u8>) -> Release {
        let mut r = Release::new("demo", v(version));
        r.rollout = percent;
        r
    }

    /// Within three standard deviations of the binomial's mean.
    fn within_3_sigma(count: usize, n: usize, p: f64) -> bool {
        let mean = n as f64 * p;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        (count as f64 - mean).abs() <= 3.0 * sigma
    }

    #[test]
    fn rollout_shares_follow_the_binomial() {
        let ids = ids();
        for percent in [1u8, 10, 50] {
            let r = rolled("1.1.0", Some(percent));
            let count = ids.iter().filter(|id| r.offered_to(id, 0)).count();
            assert!(
                within_3_sigma(count, ids.len(), f64::from(percent) / 100.0),
                "{percent}%: {count} of {}",
                ids.len()
            );
        }
        assert!(ids.iter().all(|id| rolled("1.1.0", None).offered_to(id, 0)));
        assert!(!ids
            .iter()
            .any(|id| rolled("1.1.0", Some(0)).offered_to(id, 0)));
    }

    #[test]
    fn raising_a_rollout_keeps_everyone_in_and_releases_draw_anew() {
        let ids = ids();
        let (ten, twenty) = (rolled("1.1.0", Some(10)), rolled("1.1.0", Some(20)));
        let first: Vec<&String> = ids.iter().filter(|id| ten.offered_to(id, 0)).collect();
        assert!(!first.is_empty());
        assert!(first.iter().all(|id| twenty.offered_to(id, 0)));
        // Another release's 10 % is another draw: the cohorts overlap about
        // 10 % of 10 %.
        let other = rolled("1.2.0", Some(10));
        let both = first.iter().filter(|id| other.offered_to(id, 0)).count();
        assert!(within_3_sigma(both, ids.len(), 0.01), "{both} in both");
    }

    #[test]
    fn an_install_left_out_gets_the_newest_release_it_is_in() {
        let m = Manifest {
            releases: vec![
                rolled("1.0.0", None),
                rolled("1.1.0", None),
                rolled("1.2.0", Some(10)),
                rolled("1.3.0", Some(0)),
            ],
            ..Manifest::default()
        };
        let ids = ids();
        let audience = |id: &str| Audience {
            channel: None,
            install_id: Some(id.to_owned()),
            target: None,
            ..Audience::default()
        };
        let pick = |id: &str| {
            m.update_for_install("demo", &v("1.0.0"), &audience(id), false, false)
                .map(|r| r.version.to_string())
        };
        let mut got = std::collections::BTreeMap::new();
        for id in &ids {
            *got.entry(pick(id).unwrap()).or_insert(0) += 1;
        }
        // 0 % halts 1.3.0; about a tenth get 1.2.0, the rest 1.1.0.
        assert!(!got.contains_key("1.3.0"), "{got:?}");
        assert!(within_3_sigma(got["1.2.0"], ids.len(), 0.1), "{got:?}");
        assert_eq!(got["1.1.0"] + got["1.2.0"], ids.len());
    }

    #[test]
    fn channels_are_followed_and_never_downgrade() {
        let mut beta = rolled("2.0.0-beta.1", None);
        beta.channel = Some("beta".into());
        let mut beta_stable = rolled("1.5.0", None);
        beta_stable.channel = Some("beta".into());
        let m = Manifest {
            releases: vec![
                rolled("1.0.0", None),
                rolled("1.1.0", None),
                beta,
                beta_stable,
            ],
            ..Manifest::default()
        };
        let on = |channel: Option<&str>| Audience {
            channel: channel.map(str::to_owned),
            install_id: None,
            target: None,
            ..Audience::default()
        };
        let pick = |current: &str, channel: Option<&str>| {
            m.update_for_install("demo", &v(current), &on(channel), true, false)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.0.0", None).as_deref(), Some("1.1.0"));
        assert_eq!(pick("1.0.0", Some("stable")).as_deref(), Some("1.1.0"));
        assert_eq!(pick("1.0.0", Some("beta")).as_deref(), Some("2.0.0-beta.1"));
        // Back on stable from the beta: nothing lower is installed by itself,
        // only when the app asks for it.
        assert_eq!(pick("2.0.0-beta.1", Some("stable")), None);
        let asked = Audience {
            downgrade: true,
            ..on(Some("stable"))
        };
        // Never from an unsigned manifest.
        assert_eq!(
            m.update_for_install("demo", &v("2.0.0-beta.1"), &asked, true, false),
            None
        );
        let down = m.update_for_install("demo", &v("2.0.0-beta.1"), &asked, true, true);
        assert_eq!(
            down.map(|r| r.version.to_string()).as_deref(),
            Some("1.1.0")
        );
        assert_eq!(
            m.update_for_install("demo", &v("1.1.0"), &asked, true, false),
            None
        );
        let text = m.render();
        assert!(text.contains("demo 1.5.0 channel=beta\n"), "{text}");
        assert_eq!(Manifest::parse(&text, "t").unwrap().releases.len(), 4);
    }

    #[test]
    fn rollout_and_channel_fields_are_checked() {
        let m = Manifest::parse("demo 1.1.0 rollout=25 channel=beta\n", "t").unwrap();
        assert_eq!(m.releases[0].rollout, Some(25));
        assert_eq!(m.releases[0].channel(), "beta");
        assert!(m.render().contains("demo 1.1.0 channel=beta rollout=25\n"));
        for bad in ["rollout=101", "rollout=-1", "rollout=ten", "channel=a/b"] {
            let err = Manifest::parse(&format!("demo 1.1.0 {bad}\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
        // A client that knows neither field keeps them as unknown keys.
        let old = Manifest::parse("demo 1.1.0 future=1\n", "t").unwrap();
        assert_eq!(
            old.releases[0].extra.get("future").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn the_floor_overrides_the_rollout_and_is_never_lowered() {
        let mut floor = rolled("1.1.0", Some(0));
        floor.min_version = Some(v("1.1.0"));
        let mut lower = rolled("1.2.0", Some(0));
        lower.min_version = Some(v("1.0.0"));
        let m = Manifest {
            releases: vec![rolled("1.0.0", None), floor, lower],
            ..Manifest::default()
        };
        assert_eq!(m.floor("demo", DEFAULT_CHANNEL), Some(&v("1.1.0")));
        assert_eq!(m.floor("demo", "beta"), None);
        // Withdrawing the release that set the floor leaves the floor.
        let mut withdrawn = m.clone();
        withdrawn.releases[1].yanked = true;
        assert_eq!(withdrawn.floor("demo", DEFAULT_CHANNEL), Some(&v("1.1.0")));
        assert_eq!(
            withdrawn.floor_for("demo", &Audience::default(), false),
            Some(&v("1.1.0"))
        );
        let audience = Audience {
            channel: None,
            install_id: Some(ids()[0].clone()),
            target: None,
            ..Audience::default()
        };
        // Below the floor of a signed manifest: the lowest release that
        // reaches the floor, whatever its rollout, since none there is
        // offered; the halted 1.2.0 stays halted.
        let pick = |current: &str| {
            m.update_for_install("demo", &v(current), &audience, false, true)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick("1.0.0").as_deref(), Some("1.1.0"));
        // An unsigned manifest requires nothing: the rollouts hold.
        assert_eq!(
            m.update_for_install("demo", &v("1.0.0"), &audience, false, false),
            None
        );
        // At the floor: the rollouts hold again (both at 0 %).
        assert_eq!(pick("1.1.0"), None);
        // A critical release reaches every install whatever its rollout,
        // and raises the floor to itself.
        let mut critical = rolled("1.3.0", Some(0));
        critical.critical = true;
        let mut m = m.clone();
        m.releases.push(critical);
        assert_eq!(m.floor("demo", DEFAULT_CHANNEL), Some(&v("1.3.0")));
        assert!(ids().iter().all(|id| m.releases[3].offered_to(id, 0)));
        let text = m.render();
        assert!(
            text.contains("demo 1.3.0 rollout=0 critical=true\n"),
            "{text}"
        );
        assert!(
            text.contains("demo 1.1.0 rollout=0 min_version=1.1.0\n"),
            "{text}"
        );
        assert_eq!(Manifest::parse(&text, "t").unwrap(), {
            let mut sorted = m.clone();
            sorted.releases.sort_by(|a, b| b.version.cmp(&a.version));
            sorted
        });
    }

    #[test]
    fn each_target_gets_its_own_line_and_a_broken_one_breaks_only_its_own() {
        let text = "# leapfrog versions v1\n\
            demo 1.1.0\n\
            demo 1.2.0 target=linux\n\
            demo 1.2.0 target=linux-x86_64 file=demo-1.2.0-linux-x86_64.tar.gz\n\
            demo 1.2.0 target=windows-x86_64\n\
            demo 1.3.0 target=windows-x86_64 sha256=broken\n\
            demo 1.4.0 target=plan9-mips\n\
            demo 1.5.0 target=windows-x86_64 critical=true\n";
        let m = Manifest::parse(text, "t").unwrap();
        assert_eq!(m.broken.len(), 1);
        assert_eq!(
            (m.broken[0].line, m.broken[0].target.as_str()),
            (6, "windows-x86_64")
        );
        let pick = |target: &str| {
            let audience = Audience {
                channel: None,
                install_id: None,
                target: Some(target.to_owned()),
                ..Audience::default()
            };
            m.update_for_install("demo", &v("1.0.0"), &audience, false, false)
                .map(|r| (r.version.to_string(), r.target.clone()))
        };
        // The line made for the target before the system's, before all.
        assert_eq!(
            pick("linux-x86_64"),
            Some(("1.2.0".into(), Some("linux-x86_64".into())))
        );
        assert_eq!(
            pick("linux-aarch64"),
            Some(("1.2.0".into(), Some("linux".into())))
        );
        assert_eq!(pick("macos-aarch64"), Some(("1.1.0".into(), None)));
        assert_eq!(
            pick("plan9-mips"),
            Some(("1.4.0".into(), Some("plan9-mips".into())))
        );
        // A floor set for another platform does not concern this one.
        let on = |target: &str| Audience {
            target: Some(target.to_owned()),
            ..Audience::default()
        };
        assert_eq!(m.floor_for("demo", &on("linux-x86_64"), false), None);
        assert_eq!(
            m.floor_for("demo", &on("windows-x86_64"), false),
            Some(&v("1.5.0"))
        );
        // The broken line concerns Windows only.
        assert_eq!(m.broken_for("demo", "windows-x86_64").count(), 1);
        assert_eq!(m.broken_for("other", "windows-x86_64").count(), 0);
        assert_eq!(m.broken_for("demo", "linux-x86_64").count(), 0);
        assert_eq!(m.broken_for("demo", "windows-aarch64").count(), 0);
        // A broken line naming two targets breaks the whole manifest.
        assert!(Manifest::parse(
            "demo 1.0.0\ndemo 1.1.0 target=windows-x86_64 target=linux-x86_64\n",
            "t"
        )
        .is_err());
        // A broken line without a target breaks the whole manifest.
        assert!(Manifest::parse("demo 1.0.0\ndemo 1.1.0 sha256=x\n", "t").is_err());
        // Two lines for one version and target are refused.
        let err = Manifest::parse("demo 1.0.0 target=linux\ndemo 1.0.0 target=linux\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("for linux is listed twice"), "{err}");
        assert!(this_target().contains('-'), "{}", this_target());
    }

    #[test]
    fn a_schedule_rises_with_the_signing_time_never_the_clients_clock() {
        use crate::release::manifest::RolloutStep;
        let day = 24 * 3600;
        let t0 = 1_800_000_000u64;
        let at = |secs: u64| UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let mut r = rolled("1.1.0", None);
        r.schedule = RolloutStep::parse_schedule("10%@+1d,50@+3d,100%@+7d", Some(at(t0))).unwrap();
        assert_eq!(r.percent_at(t0), Some(0), "before the first step: halted");
        assert_eq!(r.percent_at(t0 + day), Some(10));
        assert_eq!(r.percent_at(t0 + 5 * day), Some(50));
        assert_eq!(r.percent_at(t0 + 7 * day), None, "100 % is everyone");
        // Everyone in at 10 % is in at 50 %.
        let ids = ids();
        let ten: Vec<_> = ids.iter().filter(|id| r.offered_to(id, t0 + day)).collect();
        assert!(within_3_sigma(ten.len(), ids.len(), 0.1), "{}", ten.len());
        assert!(ten.iter().all(|id| r.offered_to(id, t0 + 3 * day)));
        let mut m = Manifest {
            releases: vec![rolled("1.0.0", None), r],
            ..Manifest::default()
        };
        // Signed a day and an hour in: a client whose clock says a week
        // later still reads the schedule at the signing time.
        m.signed = Some(humantime::format_rfc3339_seconds(at(t0 + day + 3600)).to_string());
        assert_eq!(m.schedule_time(at(t0 + 30 * day)), t0 + day + 3600);
        // A clock behind the signing time is believed (it only holds back).
        assert_eq!(m.schedule_time(at(t0)), t0);
        let text = m.render();
        let back = Manifest::parse(&text, "t").unwrap();
        assert_eq!(
            back.releases
                .iter()
                .find(|r| r.version == v("1.1.0"))
                .unwrap()
                .schedule,
            m.releases[1].schedule
        );
        assert_eq!(back.signed, m.signed);
        let picked = |clock: u64| {
            let audience = Audience {
                install_id: Some(ids[0].clone()),
                now: Some(at(clock)),
                ..Audience::default()
            };
            let offered: usize = ids
                .iter()
                .filter(|id| {
                    let a = Audience {
                        install_id: Some((*id).clone()),
                        ..audience.clone()
                    };
                    m.update_for_install("demo", &v("1.0.0"), &a, false, true)
                        .is_some_and(|r| r.version == v("1.1.0"))
                })
                .count();
            offered
        };
        // Before the first step nobody is in, not even a user who asks.
        let asked = Audience {
            by_user: true,
            now: Some(at(t0)),
            ..Audience::default()
        };
        assert_eq!(
            m.update_for_install("demo", &v("1.0.0"), &asked, false, true),
            None
        );
        let far_ahead = picked(t0 + 30 * day);
        assert!(within_3_sigma(far_ahead, ids.len(), 0.1), "{far_ahead}");
        assert_eq!(picked(t0), 0);
        // Bad schedules are refused with the reason.
        for bad in [
            "10%@+2d,5%@+3d",
            "10%@+2d,50%@+1d",
            "101%@+1d",
            "10%",
            "10%@tomorrow",
        ] {
            assert!(
                RolloutStep::parse_schedule(bad, Some(at(t0))).is_err(),
                "{bad}"
            );
        }
        // In a manifest, times are written out.
        assert!(Manifest::parse("demo 1.1.0 schedule=10@+1d\n", "t").is_err());
    }

    #[test]
    fn a_user_who_asks_gets_a_staged_release_unless_it_is_halted() {
        let m = Manifest {
            releases: vec![
                rolled("1.0.0", None),
                rolled("1.1.0", Some(1)),
                rolled("1.2.0", Some(0)),
            ],
            ..Manifest::default()
        };
        let ids = ids();
        let out = ids
            .iter()
            .find(|id| !m.releases[1].offered_to(id, 0))
            .unwrap();
        let audience = Audience {
            install_id: Some(out.clone()),
            ..Audience::default()
        };
        let pick = |a: &Audience| {
            m.update_for_install("demo", &v("1.0.0"), a, false, true)
                .map(|r| r.version.to_string())
        };
        assert_eq!(pick(&audience), None);
        let asked = Audience {
            by_user: true,
            ..audience
        };
        assert_eq!(pick(&asked).as_deref(), Some("1.1.0"), "1.2.0 is halted");
    }

    #[test]
    fn older_clients_see_only_the_lines_meant_for_everyone() {
        let mut beta = rolled("1.4.0", None);
        beta.channel = Some("beta".into());
        let mut windows = rolled("1.3.0", None);
        windows.target = Some("windows-x86_64".into());
        let mut linux = rolled("1.3.0", None);
        linux.target = Some("linux".into());
        let mut m = Manifest {
            releases: vec![
                rolled("1.1.0", None),
                rolled("1.2.0", Some(10)),
                windows,
                linux,
                beta,
            ],
            signed: Some("2026-12-06T00:00:00Z".into()),
            ..Manifest::default()
        };
        m.releases[0].min_version = Some(v("1.0.0"));
        let text = m.render();
        // What a reader that skips every line beginning with '#' is left with.
        let visible: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(visible, ["demo 1.1.0 min_version=1.0.0"], "{text}");
        assert!(text.contains("#+ signed 2026-12-06T00:00:00Z\n"), "{text}");
        assert_eq!(Manifest::parse(&text, "t").unwrap().releases.len(), 5);
    }
}
