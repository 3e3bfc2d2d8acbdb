//! Release policy, decided by each install from the one signed manifest:
//! the channel it follows, staged rollouts (by its random install id),
//! the publisher's floor (a minimum version, critical releases) and the
//! platform it runs on.

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
}

impl Audience {
    /// The channel followed.
    pub fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
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

    /// Whether the staged rollout offers this release to the install with
    /// `install_id`: its bucket is below the release's share (0 % halts, no
    /// `rollout` is everyone).
    pub fn offered_to(&self, install_id: &str) -> bool {
        if self.critical {
            return true;
        }
        match self.rollout {
            None => true,
            Some(percent) => self.bucket(install_id) < f64::from(percent) / 100.0,
        }
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
                .filter(|r| r.channel() == audience.channel())
                .filter(|r| {
                    audience
                        .target
                        .as_deref()
                        .is_none_or(|t| r.fit(t).is_some())
                })
        };
        let offered = || {
            takeable().filter(|r| {
                audience
                    .install_id
                    .as_deref()
                    .is_none_or(|id| r.offered_to(id))
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
        let running_yanked = self.releases_of(program).any(|r| {
            &r.version == current
                && r.yanked
                && audience
                    .target
                    .as_deref()
                    .is_none_or(|t| r.fit(t).is_some())
        });
        if signed && (running_yanked || audience.downgrade) {
            return offered().filter(|r| &r.version < current).max_by(order);
        }
        None
    }

    /// The lowest version of `program` that installs on `channel` may keep
    /// running: the highest `min_version` any of its releases there sets
    /// (so a later release can never lower it), and the version of the
    /// newest critical release.
    pub fn floor(&self, program: &str, channel: &str) -> Option<&Version> {
        self.releases_of(program)
            .filter(|r| !r.yanked && r.channel() == channel)
            .flat_map(|r| r.min_version.iter().chain(r.critical.then_some(&r.version)))
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
            .filter(|r| !r.yanked && r.channel() == audience.channel())
            .filter(|r| prereleases || r.version.pre.is_empty())
            .filter(|r| {
                audience
                    .target
                    .as_deref()
                    .is_none_or(|t| r.fit(t).is_some())
            })
            .flat_map(|r| r.min_version.iter().chain(r.critical.then_some(&r.version)))
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
            let count = ids.iter().filter(|id| r.offered_to(id)).count();
            assert!(
                within_3_sigma(count, ids.len(), f64::from(percent) / 100.0),
                "{percent}%: {count} of {}",
                ids.len()
            );
        }
        assert!(ids.iter().all(|id| rolled("1.1.0", None).offered_to(id)));
        assert!(!ids.iter().any(|id| rolled("1.1.0", Some(0)).offered_to(id)));
    }

    #[test]
    fn raising_a_rollout_keeps_everyone_in_and_releases_draw_anew() {
        let ids = ids();
        let (ten, twenty) = (rolled("1.1.0", Some(10)), rolled("1.1.0", Some(20)));
        let first: Vec<&String> = ids.iter().filter(|id| ten.offered_to(id)).collect();
        assert!(!first.is_empty());
        assert!(first.iter().all(|id| twenty.offered_to(id)));
        // Another release's 10 % is another draw: the cohorts overlap about
        // 10 % of 10 %.
        let other = rolled("1.2.0", Some(10));
        let both = first.iter().filter(|id| other.offered_to(id)).count();
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
            downgrade: false,
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
            downgrade: false,
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
        let audience = Audience {
            channel: None,
            install_id: Some(ids()[0].clone()),
            target: None,
            downgrade: false,
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
        assert!(ids().iter().all(|id| m.releases[3].offered_to(id)));
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
                downgrade: false,
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
}
