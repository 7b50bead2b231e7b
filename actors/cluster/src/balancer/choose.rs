//! Which server a balancer sends a viewer to: a pure function of the servers' configured
//! limits, their load as the mesh last reported it, the redirects issued since, the
//! viewer's country and one random draw (from the runtime seam, so simulations replay).
//!
//! Rules (Flussonic's balancer, as docs/runtime-semantics.md states them):
//! 1. Only servers that are up (alive in the mesh, or this node itself) are candidates.
//! 2. GeoIP, among those: the servers listing the viewer's country; else those with
//!    `countries_default=true`; else all. An address the database does not know is one
//!    of "the others"; without a database the lists are ignored.
//! 3. Of those, servers that are full (output at or over `max_bitrate`) are skipped; if
//!    none is left, the viewer is refused (no spill to other countries' servers).
//! 4. The mode's metric, lowest wins: `clients` (viewers), `bitrate` (output kbit/s),
//!    `usage` (output ÷ `max_bitrate`, or ÷ `total_bandwidth` without one), `streams`
//!    (online streams). Redirects issued since the server's last report count as viewers
//!    of the average bitrate, so a burst does not all land on one server.
//! 5. Ties: a server already carrying the stream first, then a random one.

use std::sync::Arc;

use serde::Serialize;

/// Estimated bitrate of a redirected viewer on a server that reports no viewers yet,
/// kbit/s (a typical HD rendition).
pub const DEFAULT_VIEWER_KBIT: u64 = 2_500;

/// A balancing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fewest viewers.
    Clients,
    /// Least output bitrate.
    Bitrate,
    /// Least output against capacity.
    Usage,
    /// Fewest online streams.
    Streams,
}

impl Mode {
    /// The mode called `name` (the config's spelling).
    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "clients" => Some(Mode::Clients),
            "bitrate" => Some(Mode::Bitrate),
            "usage" => Some(Mode::Usage),
            "streams" => Some(Mode::Streams),
            _ => None,
        }
    }
}

/// A server as the balancer sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Its name (as configured). Shared: requests copy the table's servers.
    pub name: Arc<str>,
    /// Alive in the mesh (or this node itself).
    pub up: bool,
    /// `max_bitrate=`, kbit/s.
    pub max_bitrate_kbit: Option<u64>,
    /// `countries=`, upper case.
    pub countries: Arc<[String]>,
    /// `countries_default=true`.
    pub countries_default: bool,
    /// Viewers it reported.
    pub clients: u64,
    /// Output bitrate it reported, kbit/s.
    pub output_kbit: u64,
    /// Online streams it reported.
    pub online_streams: u64,
    /// Its `total_bandwidth`, kbit/s (0: unknown).
    pub total_bandwidth_kbit: u64,
}

/// Why no server was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoServer {
    /// Every server is down (stale, unauthorized or never heard from).
    AllDown,
    /// Every server that is up is at its `max_bitrate`.
    AllFull,
}

impl Server {
    /// Average output per viewer, the cost of one more.
    fn viewer_kbit(&self) -> u64 {
        self.output_kbit
            .checked_div(self.clients)
            .filter(|kbit| *kbit > 0)
            .unwrap_or(DEFAULT_VIEWER_KBIT)
    }

    /// Output including the redirects sent since its last report.
    fn expected_output_kbit(&self, pending: u64) -> u64 {
        self.output_kbit
            .saturating_add(pending.saturating_mul(self.viewer_kbit()))
    }

    fn full(&self, pending: u64) -> bool {
        self.max_bitrate_kbit
            .is_some_and(|max| self.expected_output_kbit(pending) >= max)
    }

    /// The mode's metric (lower is better). `usage` is in millionths.
    pub fn metric(&self, mode: Mode, pending: u64) -> u64 {
        match mode {
            Mode::Clients => self.clients.saturating_add(pending),
            Mode::Bitrate => self.expected_output_kbit(pending),
            Mode::Usage => {
                let capacity = self
                    .max_bitrate_kbit
                    .filter(|max| *max > 0)
                    .unwrap_or(self.total_bandwidth_kbit);
                if capacity == 0 {
                    return u64::MAX;
                }
                let used = u128::from(self.expected_output_kbit(pending)) * 1_000_000;
                u64::try_from(used / u128::from(capacity)).unwrap_or(u64::MAX)
            }
            Mode::Streams => self.online_streams,
        }
    }
}

/// What GeoIP says about a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geo<'a> {
    /// No GeoIP here (no database, or no server lists countries): lists are ignored.
    Off,
    /// The database does not know the viewer's address: one of "the others".
    Unknown,
    /// The viewer's country (ISO 3166-1 alpha-2, any case).
    Country(&'a str),
}

/// The servers rule 2 lets a viewer use, as a test on one server (so a choice needs no
/// list of indices: it runs on every request of a balancer's flood).
#[derive(Debug, Clone, Copy)]
enum Allowed<'a> {
    /// Every server (GeoIP off, or nobody lists the country and nobody is a default).
    All,
    /// The servers listing this country.
    Listing(&'a str),
    /// The servers with `countries_default=true`.
    Defaults,
}

impl<'a> Allowed<'a> {
    /// The rule for a viewer from `geo`, judged among the servers `among` admits.
    fn for_viewer(servers: &[Server], among: impl Fn(&Server) -> bool, geo: Geo<'a>) -> Self {
        let country = match geo {
            Geo::Off => return Allowed::All,
            Geo::Unknown => None,
            Geo::Country(country) => Some(country),
        };
        let candidates = || servers.iter().filter(|server| among(server));
        if let Some(country) = country
            && candidates().any(|server| server.lists(country))
        {
            return Allowed::Listing(country);
        }
        if candidates().any(|server| server.countries_default) {
            Allowed::Defaults
        } else {
            Allowed::All
        }
    }

    fn admits(self, server: &Server) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Listing(country) => server.lists(country),
            Allowed::Defaults => server.countries_default,
        }
    }
}

impl Server {
    /// Lists `country` (any case) in `countries=`.
    fn lists(&self, country: &str) -> bool {
        self.countries
            .iter()
            .any(|listed| listed.eq_ignore_ascii_case(country))
    }
}

/// The servers GeoIP allows for a viewer (indices into `servers`).
pub fn by_country(servers: &[Server], geo: Geo<'_>) -> Vec<usize> {
    let allowed = Allowed::for_viewer(servers, |_| true, geo);
    (0..servers.len())
        .filter(|i| allowed.admits(&servers[*i]))
        .collect()
}

/// Chooses a server for one viewer: its index in `servers`. `pending[i]` holds the
/// redirects sent to server `i` since its last report (missing: none); `carries(i)`
/// says whether server `i` carries the stream already (asked of tied servers only);
/// `random` is one draw for the tie-break. Allocation-free: it runs on every redirect.
pub fn choose(
    servers: &[Server],
    mode: Mode,
    geo: Geo<'_>,
    pending: &[u64],
    carries: impl Fn(usize) -> bool,
    random: u64,
) -> Result<usize, NoServer> {
    let pending_of = |i: usize| pending.get(i).copied().unwrap_or(0);
    // Countries choose among the servers that are up (as Flussonic documents): when the
    // servers listing a country are all down, its viewers go to the default ones.
    if !servers.iter().any(|server| server.up) {
        return Err(NoServer::AllDown);
    }
    let allowed = Allowed::for_viewer(servers, |server| server.up, geo);
    let open = |i: usize| {
        let server = &servers[i];
        server.up && allowed.admits(server) && !server.full(pending_of(i))
    };
    let metric = |i: usize| servers[i].metric(mode, pending_of(i));
    let best = (0..servers.len())
        .filter(|i| open(*i))
        .map(metric)
        .min()
        .ok_or(NoServer::AllFull)?;
    let tied = |i: usize| open(i) && metric(i) == best;
    // One pass counts the tied servers and those carrying the stream (asked once each);
    // a second finds the drawn one in the pool.
    let (mut tied_count, mut carriers) = (0u64, 0u64);
    let mut first_carrier = servers.len();
    for i in (0..servers.len()).filter(|i| tied(*i)) {
        tied_count += 1;
        if carries(i) {
            carriers += 1;
            first_carrier = first_carrier.min(i);
        }
    }
    let (size, in_pool): (u64, &dyn Fn(usize) -> bool) = match carriers {
        0 => (tied_count, &tied),
        // The usual case: one server carries it.
        1 => return Ok(first_carrier),
        _ => (carriers, &|i| tied(i) && carries(i)),
    };
    (0..servers.len())
        .filter(|i| in_pool(*i))
        .nth((random % size.max(1)) as usize)
        .ok_or(NoServer::AllFull)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn server(name: &str) -> Server {
        Server {
            name: name.into(),
            up: true,
            max_bitrate_kbit: None,
            countries: Arc::default(),
            countries_default: false,
            clients: 0,
            output_kbit: 0,
            online_streams: 0,
            total_bandwidth_kbit: 0,
        }
    }

    fn pick(servers: &[Server], mode: Mode) -> &str {
        &servers[choose(servers, mode, Geo::Off, &[], |_| false, 0).unwrap()].name
    }

    #[test]
    fn each_mode_picks_its_least_loaded_server() {
        let mut a = server("a");
        let mut b = server("b");
        a.clients = 10;
        b.clients = 20;
        a.output_kbit = 50_000;
        b.output_kbit = 20_000;
        a.online_streams = 3;
        b.online_streams = 5;
        a.max_bitrate_kbit = Some(100_000);
        b.max_bitrate_kbit = Some(25_000);
        let servers = [a, b];
        assert_eq!(pick(&servers, Mode::Clients), "a");
        assert_eq!(pick(&servers, Mode::Bitrate), "b");
        assert_eq!(pick(&servers, Mode::Usage), "a", "50% beats 80%");
        assert_eq!(pick(&servers, Mode::Streams), "a");
    }

    #[test]
    fn usage_falls_back_to_total_bandwidth() {
        let mut a = server("a");
        let mut b = server("b");
        a.output_kbit = 400_000;
        a.total_bandwidth_kbit = 1_000_000;
        b.output_kbit = 300_000;
        b.total_bandwidth_kbit = 500_000;
        assert_eq!(pick(&[a, b], Mode::Usage), "a", "40% beats 60%");
    }

    #[test]
    fn full_and_down_servers_are_never_chosen() {
        let mut a = server("a");
        let mut b = server("b");
        let mut c = server("c");
        a.max_bitrate_kbit = Some(10_000);
        a.output_kbit = 10_000;
        b.up = false;
        c.clients = 1_000;
        let servers = [a, b, c];
        assert_eq!(pick(&servers, Mode::Clients), "c");
        let mut none = servers.clone();
        none[2].up = false;
        assert_eq!(
            choose(&none, Mode::Clients, Geo::Off, &[], |_| false, 0),
            Err(NoServer::AllFull)
        );
        none[0].up = false;
        assert_eq!(
            choose(&none, Mode::Clients, Geo::Off, &[], |_| false, 0),
            Err(NoServer::AllDown)
        );
    }

    #[test]
    fn redirects_since_the_last_report_spread_a_burst() {
        let servers = [server("a"), server("b"), server("c")];
        let mut pending = vec![0u64; servers.len()];
        for draw in 0..30u64 {
            let chosen =
                choose(&servers, Mode::Clients, Geo::Off, &pending, |_| false, draw).unwrap();
            pending[chosen] += 1;
        }
        assert!(pending.iter().all(|count| *count == 10), "{pending:?}");
    }

    #[test]
    fn a_tie_prefers_the_server_that_carries_the_stream() {
        let servers = [server("a"), server("b"), server("c")];
        for draw in 0..10 {
            assert_eq!(
                choose(&servers, Mode::Clients, Geo::Off, &[], |i| i == 2, draw),
                Ok(2)
            );
        }
    }

    /// The seed's example: p1 RU; p2 RU,CN; p3 CN + default; p4 default.
    #[test]
    fn geoip_follows_the_seed_example() {
        let mut p1 = server("p1");
        p1.countries = ["RU".to_string()].into();
        let mut p2 = server("p2");
        p2.countries = ["RU".to_string(), "CN".to_string()].into();
        let mut p3 = server("p3");
        p3.countries = ["CN".to_string()].into();
        p3.countries_default = true;
        let mut p4 = server("p4");
        p4.countries_default = true;
        let servers = [p1, p2, p3, p4];
        let names = |geo: Geo<'_>| -> Vec<&str> {
            by_country(&servers, geo)
                .into_iter()
                .map(|i| &*servers[i].name)
                .collect()
        };
        assert_eq!(names(Geo::Country("CN")), vec!["p2", "p3"]);
        assert_eq!(names(Geo::Country("ru")), vec!["p1", "p2"]);
        assert_eq!(names(Geo::Country("BR")), vec!["p3", "p4"]);
        assert_eq!(
            names(Geo::Unknown),
            vec!["p3", "p4"],
            "an unknown address is one of the others"
        );
        assert_eq!(names(Geo::Off), vec!["p1", "p2", "p3", "p4"]);
        // And the choice stays within them whatever the draw.
        for draw in 0..20 {
            let chosen = choose(
                &servers,
                Mode::Clients,
                Geo::Country("CN"),
                &[],
                |_| false,
                draw,
            );
            assert!(matches!(chosen, Ok(1 | 2)), "{chosen:?}");
        }
        // Both Russian servers down: Russian viewers go to the default ones.
        let mut down = servers.clone();
        down[0].up = false;
        down[1].up = false;
        for draw in 0..20 {
            let chosen = choose(
                &down,
                Mode::Clients,
                Geo::Country("RU"),
                &[],
                |_| false,
                draw,
            );
            assert!(matches!(chosen, Ok(2 | 3)), "{chosen:?}");
        }
        // A full country server does not spill over: the viewer is refused.
        let mut full = servers.clone();
        full[0].max_bitrate_kbit = Some(1);
        full[0].output_kbit = 5;
        full[1].max_bitrate_kbit = Some(1);
        full[1].output_kbit = 5;
        assert_eq!(
            choose(&full, Mode::Clients, Geo::Country("RU"), &[], |_| false, 0),
            Err(NoServer::AllFull)
        );
    }

    /// The rules written the long way, with a list per step: the choice must be the same
    /// server for the same draw.
    fn choose_by_lists(
        servers: &[Server],
        mode: Mode,
        geo: Geo<'_>,
        carries: impl Fn(usize) -> bool,
        random: u64,
    ) -> Result<usize, NoServer> {
        let up: Vec<usize> = (0..servers.len()).filter(|i| servers[*i].up).collect();
        if up.is_empty() {
            return Err(NoServer::AllDown);
        }
        let listing: Vec<usize> = match geo {
            Geo::Country(country) => up
                .iter()
                .copied()
                .filter(|i| servers[*i].lists(country))
                .collect(),
            _ => Vec::new(),
        };
        let defaults: Vec<usize> = up
            .iter()
            .copied()
            .filter(|i| servers[*i].countries_default)
            .collect();
        let allowed = match geo {
            Geo::Off => up,
            _ if !listing.is_empty() => listing,
            _ if !defaults.is_empty() => defaults,
            _ => up,
        };
        let open: Vec<usize> = allowed
            .into_iter()
            .filter(|i| !servers[*i].full(0))
            .collect();
        let best = open
            .iter()
            .map(|i| servers[*i].metric(mode, 0))
            .min()
            .ok_or(NoServer::AllFull)?;
        let tied: Vec<usize> = open
            .into_iter()
            .filter(|i| servers[*i].metric(mode, 0) == best)
            .collect();
        let carrying: Vec<usize> = tied.iter().copied().filter(|i| carries(*i)).collect();
        let pool = if carrying.is_empty() { tied } else { carrying };
        Ok(pool[(random % pool.len() as u64) as usize])
    }

    proptest! {
        /// The allocation-free choice picks what the rules written with lists pick.
        #[test]
        fn the_choice_matches_the_rules_written_with_lists(
            loads in proptest::collection::vec(
                (any::<bool>(), 0u64..4, proptest::option::of(1u64..4), 0usize..4, any::<bool>(), any::<bool>()),
                1..8,
            ),
            mode in 0usize..4,
            geo in 0usize..5,
            draw in any::<u64>(),
        ) {
            let mode = [Mode::Clients, Mode::Bitrate, Mode::Usage, Mode::Streams][mode];
            let lists = [&[][..], &["RU"][..], &["CN"][..], &["RU", "CN"][..]];
            let servers: Vec<Server> = loads
                .iter()
                .enumerate()
                .map(|(i, (up, clients, max, countries, default, _))| Server {
                    up: *up,
                    clients: *clients,
                    output_kbit: clients * 2,
                    max_bitrate_kbit: *max,
                    total_bandwidth_kbit: 10,
                    online_streams: *clients % 2,
                    countries: lists[*countries].iter().map(|c| c.to_string()).collect(),
                    countries_default: *default,
                    ..server(&format!("s{i}"))
                })
                .collect();
            let geo = [Geo::Off, Geo::Unknown, Geo::Country("ru"), Geo::Country("CN"), Geo::Country("BR")][geo];
            let carries = |i: usize| loads[i].5;
            prop_assert_eq!(
                choose(&servers, mode, geo, &[], carries, draw),
                choose_by_lists(&servers, mode, geo, carries, draw)
            );
        }
    }

    proptest! {
        /// Whatever the loads, the chosen server is up, not full, allowed for the
        /// country, and no open candidate has a strictly lower metric.
        #[test]
        fn the_choice_is_a_least_loaded_allowed_open_server(
            loads in proptest::collection::vec(
                (any::<bool>(), 0u64..100, 0u64..100_000, proptest::option::of(1u64..100_000)),
                1..8,
            ),
            mode in 0usize..4,
            draw in any::<u64>(),
        ) {
            let mode = [Mode::Clients, Mode::Bitrate, Mode::Usage, Mode::Streams][mode];
            let servers: Vec<Server> = loads
                .iter()
                .enumerate()
                .map(|(i, (up, clients, output, max))| Server {
                    up: *up,
                    clients: *clients,
                    output_kbit: *output,
                    max_bitrate_kbit: *max,
                    total_bandwidth_kbit: 1_000_000,
                    online_streams: *clients % 7,
                    ..server(&format!("s{i}"))
                })
                .collect();
            if let Ok(chosen) = choose(&servers, mode, Geo::Off, &[], |_| false, draw) {
                let winner = &servers[chosen];
                prop_assert!(winner.up && !winner.full(0));
                for other in servers.iter().filter(|s| s.up && !s.full(0)) {
                    prop_assert!(winner.metric(mode, 0) <= other.metric(mode, 0));
                }
            } else {
                prop_assert!(servers.iter().all(|s| !s.up || s.full(0)));
            }
        }
    }
}
