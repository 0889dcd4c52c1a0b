//! `builtins.calendar`: days picked by the calendar (days of the week and
//! of the month, months, the n-th weekday of a month, every n-th day),
//! time-of-day windows on those days in an IANA time zone, windows nested
//! inside them to any depth ("every 15 min for 60 s"), and inside the
//! innermost window a collection every `every` seconds.
//!
//! Civil dates and times, time zones and DST come from jiff (the IANA
//! database from the host's `/usr/share/zoneinfo`, else the copy built
//! in). Windows are turned into instants once, at their edges; inside a
//! window everything is real elapsed time, so a DST shift never doubles or
//! drops a run: a window that spans the repeated hour lasts an hour longer
//! and has an hour more of runs. A window edge that falls in the skipped
//! hour moves forward by the gap (02:30 on the spring-forward night is
//! 03:30); one in the repeated hour is its first occurrence (jiff's
//! "compatible" rule, as RFC 5545 and Temporal do).
//!
//! Pure: the clock is an argument. The search for the next day that
//! matches is bounded ([`SEARCH_DAYS`]): a calendar that matches no day in
//! that span (February 30) is refused when it is read.

use std::sync::Arc;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::Value;

use super::{ScheduleError, duration, param_error};
use crate::limits::{MAX_INTERVAL, MIN_INTERVAL};
use crate::sample::Timestamp;

/// Days searched for the next one that matches: eight years, so that a
/// calendar of February 29ths always finds one.
pub const SEARCH_DAYS: i64 = 8 * 366;

/// Nesting depth allowed.
pub const MAX_DEPTH: usize = 8;

/// Which days run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Days {
    /// Bit `Weekday::to_monday_zero_offset()`; 0: any.
    weekdays: u8,
    /// Bit `day - 1`; 0 with `last` false: any.
    month_days: u32,
    /// The last day of the month.
    last: bool,
    /// Bit `month - 1`; 0: any.
    months: u16,
    /// (n, weekday): the n-th (negative: from the end) weekday of a month.
    nth: Vec<(i8, Weekday)>,
    /// Every n-th day from a first day: `(n, first)`, where `first` is a
    /// date or a count of days after the day the schedule starts.
    every: Option<(u32, FirstDay)>,
}

/// The first day of an every-n-th-day calendar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FirstDay {
    /// This date.
    Date(Date),
    /// This many days after the day the schedule starts (in its zone).
    After(i64),
}

/// A time-of-day window; `to` at or before `from` ends the next day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Times {
    from: Time,
    to: Time,
}

/// A nesting level: windows of `length` µs starting every `every` µs from
/// the start of the window that holds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layer {
    every: u64,
    length: u64,
}

/// A read `builtins.calendar` schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    zone: TimeZone,
    days: Days,
    /// Sorted by `from`; empty: the whole day.
    times: Vec<Times>,
    layers: Vec<Layer>,
    /// Collection interval inside the innermost window, µs.
    every: u64,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

fn micros(secs: f64) -> u64 {
    u64::try_from(duration(secs).as_micros()).unwrap_or(u64::MAX)
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn list<'a>(
    params: Option<&'a Value>,
    pointer: &str,
    key: &str,
) -> Result<Option<&'a Vec<Value>>, ScheduleError> {
    match params.and_then(|p| p.pointer(pointer)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if !a.is_empty() => Ok(Some(a)),
        Some(_) => Err(param_error(params, key, "expected a non-empty list")),
    }
}

/// An error about the item `i` of `key` (a path below `schedule_params`).
fn item_error(key: &str, i: usize, value: &Value, expected: &str) -> ScheduleError {
    ScheduleError {
        key: format!("schedule_params/{key}/{i}"),
        value: value.clone(),
        expected: expected.to_owned(),
    }
}

fn read_days(params: Option<&Value>) -> Result<Days, ScheduleError> {
    let mut days = Days::default();
    if let Some(items) = list(params, "/days/weekdays", "days/weekdays")? {
        for (i, v) in items.iter().enumerate() {
            let w = v
                .as_str()
                .and_then(weekday)
                .ok_or_else(|| item_error("days/weekdays", i, v, "a weekday: mon, tue, ... sun"))?;
            days.weekdays |= 1 << w.to_monday_zero_offset();
        }
    }
    if let Some(items) = list(params, "/days/month_days", "days/month_days")? {
        for (i, v) in items.iter().enumerate() {
            match (v.as_u64(), v.as_str()) {
                (Some(d @ 1..=31), _) => days.month_days |= 1 << (d - 1),
                (_, Some("last")) => days.last = true,
                _ => {
                    return Err(item_error(
                        "days/month_days",
                        i,
                        v,
                        "a day of the month from 1 to 31, or \"last\"",
                    ));
                }
            }
        }
    }
    if let Some(items) = list(params, "/days/months", "days/months")? {
        for (i, v) in items.iter().enumerate() {
            let m = match (v.as_u64(), v.as_str()) {
                (Some(m @ 1..=12), _) => Some(m as usize),
                (_, Some(name)) => MONTHS
                    .iter()
                    .position(|m| name.to_ascii_lowercase().get(..3) == Some(*m))
                    .map(|p| p + 1),
                _ => None,
            }
            .ok_or_else(|| item_error("days/months", i, v, "a month: 1 to 12, or jan ... dec"))?;
            days.months |= 1 << (m - 1);
        }
    }
    if let Some(items) = list(params, "/days/nth_weekdays", "days/nth_weekdays")? {
        for (i, v) in items.iter().enumerate() {
            let n = v["n"]
                .as_i64()
                .filter(|n| (1..=5).contains(n) || (-5..=-1).contains(n));
            let w = v["weekday"].as_str().and_then(weekday);
            match (n, w) {
                (Some(n), Some(w)) => days.nth.push((n as i8, w)),
                _ => {
                    return Err(item_error(
                        "days/nth_weekdays",
                        i,
                        v,
                        "{\"n\": 1 to 5 or -1 to -5 (from the month's end), \"weekday\": mon ... sun}",
                    ));
                }
            }
        }
    }
    let every = params.and_then(|p| p.pointer("/days/every_days"));
    if let Some(v) = every.filter(|v| !v.is_null()) {
        let n = v
            .as_u64()
            .filter(|n| (1..=3660).contains(n))
            .ok_or_else(|| param_error(params, "days/every_days", "expected 1 to 3660 days"))?;
        let first = match (
            params.and_then(|p| p.pointer("/days/first_day")),
            params.and_then(|p| p.pointer("/days/starting_in_days")),
        ) {
            (Some(d), None) => FirstDay::Date(
                d.as_str()
                    .and_then(|s| s.parse::<Date>().ok())
                    .ok_or_else(|| raw_error("days/first_day", d, "a date YYYY-MM-DD"))?,
            ),
            (None, Some(z)) => FirstDay::After(
                z.as_i64()
                    .filter(|z| (0..=3660).contains(z))
                    .ok_or_else(|| raw_error("days/starting_in_days", z, "0 to 3660 days"))?,
            ),
            (None, None) => FirstDay::After(0),
            (Some(_), Some(z)) => {
                return Err(raw_error(
                    "days/starting_in_days",
                    z,
                    "either first_day or starting_in_days, not both",
                ));
            }
        };
        days.every = Some((n as u32, first));
    }
    Ok(days)
}

fn raw_error(key: &str, value: &Value, expected: &str) -> ScheduleError {
    ScheduleError {
        key: format!("schedule_params/{key}"),
        value: value.clone(),
        expected: expected.to_owned(),
    }
}

fn time_of_day(v: &Value) -> Option<Time> {
    let s = v.as_str()?;
    let t: Time = s.parse().ok()?;
    Some(t)
}

fn read_times(params: Option<&Value>) -> Result<Vec<Times>, ScheduleError> {
    let Some(items) = list(params, "/times", "times")? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        match (time_of_day(&v["from"]), time_of_day(&v["to"])) {
            (Some(from), Some(to)) => out.push(Times { from, to }),
            _ => {
                return Err(item_error(
                    "times",
                    i,
                    v,
                    "{\"from\": \"HH:MM[:SS]\", \"to\": \"HH:MM[:SS]\"} (to at or before from ends the next day)",
                ));
            }
        }
    }
    out.sort_by_key(|t| t.from);
    Ok(out)
}

fn read_layers(params: Option<&Value>) -> Result<Vec<Layer>, ScheduleError> {
    let Some(items) = list(params, "/nest", "nest")? else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_DEPTH {
        return Err(param_error(
            params,
            "nest",
            format!("expected at most {MAX_DEPTH} levels"),
        ));
    }
    let mut out: Vec<Layer> = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let every = v["every"]
            .as_f64()
            .filter(|s| s.is_finite() && (MIN_INTERVAL..=MAX_INTERVAL).contains(s));
        let length = v["for"].as_f64().filter(|s| s.is_finite() && *s > 0.0);
        let layer = match (every, length) {
            (Some(e), Some(l)) if l <= e => Layer {
                every: micros(e),
                length: micros(l),
            },
            _ => {
                return Err(item_error(
                    "nest",
                    i,
                    v,
                    &format!(
                        "{{\"every\": seconds ({MIN_INTERVAL} to {MAX_INTERVAL}), \"for\": seconds, positive, at most every}}"
                    ),
                ));
            }
        };
        if out.last().is_some_and(|outer| layer.every > outer.length) {
            return Err(item_error(
                "nest",
                i,
                v,
                "an inner level's every at most its outer level's for (else it runs once per window)",
            ));
        }
        out.push(layer);
    }
    Ok(out)
}

impl Calendar {
    /// Reads `schedule_params` of `builtins.calendar`; `every`, `start`
    /// and `end` were read by the caller.
    pub fn from_params(
        params: Option<&Value>,
        every: f64,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
    ) -> Result<Self, ScheduleError> {
        let zone = match params.and_then(|p| p.get("time_zone")) {
            None | Some(Value::Null) => TimeZone::UTC,
            Some(v) => v
                .as_str()
                .and_then(|name| TimeZone::get(name).ok())
                .ok_or_else(|| {
                    param_error(
                        params,
                        "time_zone",
                        "an IANA time zone name (e.g. Europe/Rome, UTC)",
                    )
                })?,
        };
        let calendar = Self {
            zone,
            days: read_days(params)?,
            times: read_times(params)?,
            layers: read_layers(params)?,
            every: micros(every),
            start,
            end,
        };
        if let Some(innermost) = calendar.layers.last()
            && calendar.every > innermost.length
        {
            return Err(param_error(
                params,
                "every",
                "at most the innermost nest level's for (else it runs once per window)",
            ));
        }
        // A calendar that matches no day (February 30) is an error now,
        // not a probe that never runs.
        let today = Date::constant(2026, 1, 1);
        let first = match calendar.days.every {
            Some((_, FirstDay::Date(d))) => d,
            _ => today,
        };
        if !(0..SEARCH_DAYS).any(|i| {
            first
                .checked_add(jiff::Span::new().days(i))
                .is_ok_and(|d| calendar.days.matches(d, first))
        }) {
            return Err(param_error(
                params,
                "days",
                "a calendar that matches at least one day (this one never does)",
            ));
        }
        Ok(calendar)
    }

    /// The collection interval, µs.
    pub fn every(&self) -> u64 {
        self.every
    }
}

impl Days {
    /// Whether `date` runs; `first` is the every-n-th-day calendar's
    /// first day.
    fn matches(&self, date: Date, first: Date) -> bool {
        let bit = |mask: u32, i: i8| mask & (1 << i) != 0;
        if self.weekdays != 0 && !bit(self.weekdays.into(), date.weekday().to_monday_zero_offset())
        {
            return false;
        }
        if self.months != 0 && !bit(self.months.into(), date.month() - 1) {
            return false;
        }
        if self.month_days != 0 || self.last {
            let is_last = date.day() == date.days_in_month();
            if !(bit(self.month_days, date.day() - 1) || (self.last && is_last)) {
                return false;
            }
        }
        if !self.nth.is_empty() {
            let from_start = (date.day() - 1) / 7 + 1;
            let from_end = -((date.days_in_month() - date.day()) / 7 + 1);
            if !self
                .nth
                .iter()
                .any(|(n, w)| *w == date.weekday() && (*n == from_start || *n == from_end))
            {
                return false;
            }
        }
        if let Some((n, _)) = self.every {
            let Ok(span) = first.until(date) else {
                return false;
            };
            let days = i64::from(span.get_days());
            if days < 0 || days % i64::from(n) != 0 {
                return false;
            }
        }
        true
    }
}

/// The schedule's instants from some moment on.
#[derive(Debug)]
pub struct CalendarInstants {
    calendar: Arc<Calendar>,
    /// The every-n-th-day calendar's first day.
    first: Date,
    /// No instant before this, µs.
    cursor: u64,
}

impl CalendarInstants {
    /// Instants from `now` (or the schedule's start).
    pub fn new(calendar: Arc<Calendar>, now: Timestamp) -> Self {
        let today = calendar.date_of(now.0);
        let first = match calendar.days.every {
            Some((_, FirstDay::Date(d))) => d,
            Some((_, FirstDay::After(z))) => today
                .checked_add(jiff::Span::new().days(z))
                .unwrap_or(today),
            None => today,
        };
        let cursor = calendar.start.map_or(now.0, |s| s.0);
        Self {
            calendar,
            first,
            cursor,
        }
    }

    /// The next instant at or after `now` less one interval: one that is
    /// a little late is still taken, whole intervals missed are skipped.
    pub fn next_after(&mut self, now: Timestamp) -> Option<Timestamp> {
        let late = now.0.saturating_sub(self.calendar.every.saturating_sub(1));
        self.cursor = self.cursor.max(late);
        self.next()
    }
}

impl Iterator for CalendarInstants {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        let t = self.calendar.first_at_or_after(self.cursor, self.first)?;
        self.cursor = t.saturating_add(1);
        Some(Timestamp(t))
    }
}

/// µs since the epoch of a zoned instant (before 1970: 0).
fn epoch_micros(z: &jiff::Zoned) -> u64 {
    u64::try_from(z.timestamp().as_microsecond()).unwrap_or(0)
}

impl Calendar {
    fn date_of(&self, us: u64) -> Date {
        let ts = jiff::Timestamp::from_microsecond(i64::try_from(us).unwrap_or(i64::MAX))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        ts.to_zoned(self.zone.clone()).date()
    }

    /// The instant of `date` at `time` in the zone (see the module's
    /// words on DST).
    fn at(&self, date: Date, time: Time) -> Option<u64> {
        date.to_datetime(time)
            .to_zoned(self.zone.clone())
            .ok()
            .map(|z| epoch_micros(&z))
    }

    /// The windows of `date`, as µs since the epoch.
    fn windows(&self, date: Date, out: &mut Vec<(u64, u64)>) {
        out.clear();
        let next = date.tomorrow().ok();
        if self.times.is_empty() {
            let start = date.to_zoned(self.zone.clone()).ok();
            let end = next.and_then(|n| n.to_zoned(self.zone.clone()).ok());
            if let (Some(s), Some(e)) = (start, end) {
                out.push((epoch_micros(&s), epoch_micros(&e)));
            }
            return;
        }
        for w in &self.times {
            let end_day = if w.to <= w.from { next } else { Some(date) };
            if let (Some(a), Some(b)) = (
                self.at(date, w.from),
                end_day.and_then(|d| self.at(d, w.to)),
            ) && a < b
            {
                out.push((a, b));
            }
        }
    }

    /// The first instant at or after `t` (µs), `first` being the
    /// every-n-th-day calendar's first day.
    fn first_at_or_after(&self, t: u64, first: Date) -> Option<u64> {
        let t = self.start.map_or(t, |s| t.max(s.0));
        let mut best: Option<u64> = None;
        // From the day before: its window may cross midnight into t's.
        let mut date = self.date_of(t).yesterday().ok()?;
        let mut windows = Vec::new();
        for _ in 0..SEARCH_DAYS {
            if self.days.matches(date, first) {
                self.windows(date, &mut windows);
                for &(a, b) in &windows {
                    if best.is_some_and(|x| a > x) {
                        break;
                    }
                    if let Some(x) = descend(a, b, &self.layers, self.every, t) {
                        best = Some(best.map_or(x, |y| y.min(x)));
                    }
                }
            }
            // Windows of later days start later than any of this day's.
            if let Some(x) = best
                && date
                    .tomorrow()
                    .ok()
                    .and_then(|d| self.at(d, Time::midnight()))
                    .is_some_and(|next_day| x < next_day)
            {
                break;
            }
            date = date.tomorrow().ok()?;
        }
        best.filter(|x| self.end.is_none_or(|e| *x <= e.0))
    }
}

/// The first instant at or after `t` inside window `[a, b)`, with the
/// nesting `layers` inside it and a collection every `every` µs in the
/// innermost window; every level counts from its window's start.
fn descend(a: u64, b: u64, layers: &[Layer], every: u64, t: u64) -> Option<u64> {
    let from = t.max(a);
    if from >= b {
        return None;
    }
    match layers.split_first() {
        None => {
            let k = (from - a).div_ceil(every.max(1));
            let x = a.checked_add(k.checked_mul(every)?)?;
            (x < b).then_some(x)
        }
        Some((layer, rest)) => {
            let mut k = (from - a) / layer.every.max(1);
            loop {
                let s = a.checked_add(k.checked_mul(layer.every)?)?;
                if s >= b {
                    return None;
                }
                let e = s.saturating_add(layer.length).min(b);
                if let Some(x) = descend(s, e, rest, every, t) {
                    return Some(x);
                }
                k += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ScheduleSpec;
    use super::*;
    use jiff::civil::date;
    use serde_json::json;

    fn spec(params: Value) -> Result<Arc<Calendar>, ScheduleError> {
        match ScheduleSpec::from_config("builtins.calendar", Some(&params))? {
            ScheduleSpec::Calendar(c) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    /// The instant of a civil date-time in `zone`.
    fn at(zone: &str, y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        let z = date(y, m, d).at(h, min, 0, 0).in_tz(zone).unwrap();
        Timestamp(z.timestamp().as_microsecond() as u64)
    }

    /// Instants from `from` (inclusive) to `to` (exclusive).
    fn between(c: &Arc<Calendar>, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let all: Vec<Timestamp> = CalendarInstants::new(Arc::clone(c), from)
            .take_while(|t| *t < to)
            .collect();
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "not strictly increasing"
        );
        all
    }

    fn civil(zone: &str, t: Timestamp) -> jiff::civil::DateTime {
        jiff::Timestamp::from_microsecond(t.0 as i64)
            .unwrap()
            .in_tz(zone)
            .unwrap()
            .datetime()
    }

    #[test]
    fn every_10s_for_60s_every_15min_on_weekdays_8_to_18_in_rome() {
        let c = spec(json!({
            "every": 10,
            "time_zone": "Europe/Rome",
            "days": {"weekdays": ["mon", "tue", "wed", "thu", "fri"]},
            "times": [{"from": "08:00", "to": "18:00"}],
            "nest": [{"every": 900, "for": 60}]
        }))
        .unwrap();
        // Monday 2026-12-07 to Monday 2026-12-14.
        let all = between(
            &c,
            at("Europe/Rome", 2026, 12, 7, 0, 0),
            at("Europe/Rome", 2026, 12, 14, 0, 0),
        );
        // 5 days x 10 hours x 4 windows x 6 runs.
        assert_eq!(all.len(), 5 * 10 * 4 * 6);
        for t in &all {
            let dt = civil("Europe/Rome", *t);
            assert!(dt.weekday().to_monday_zero_offset() < 5, "{dt}");
            assert!((8..18).contains(&dt.hour()), "{dt}");
            assert_eq!(dt.minute() % 15, 0, "{dt}");
            assert_eq!(dt.second() % 10, 0, "{dt}");
        }
        assert_eq!(
            civil("Europe/Rome", all[0]).to_string(),
            "2026-12-07T08:00:00"
        );
        assert_eq!(
            civil("Europe/Rome", *all.last().unwrap()).to_string(),
            "2026-12-11T17:45:50"
        );
    }

    /// Hourly over whole days, across both DST shifts of two zones: every
    /// real hour has its run, none twice.
    #[test]
    fn dst_shifts_neither_lose_nor_double_a_run() {
        for (zone, spring, autumn) in [
            ("Europe/Rome", (2026, 3, 29), (2026, 10, 25)),
            ("America/New_York", (2026, 3, 8), (2026, 11, 1)),
        ] {
            let c = spec(json!({"every": 3600, "time_zone": zone})).unwrap();
            for ((y, m, d), hours) in [(spring, 23), (autumn, 25)] {
                let from = at(zone, y, m, d, 0, 0);
                let to = at(zone, y, m, d + 1, 0, 0);
                let runs = between(&c, from, to);
                assert_eq!(runs.len(), hours, "{zone} {y}-{m}-{d}");
                assert!(runs.windows(2).all(|w| w[1].0 - w[0].0 == 3_600_000_000));
            }
            // A window edge inside the skipped hour moves past the gap;
            // one in the repeated hour is its first occurrence.
            let c = spec(json!({"every": 600, "time_zone": zone,
                "times": [{"from": "02:30", "to": "02:50"}]}))
            .unwrap();
            let (y, m, d) = spring;
            let runs = between(&c, at(zone, y, m, d, 0, 0), at(zone, y, m, d + 1, 0, 0));
            let local: Vec<String> = runs
                .iter()
                .map(|t| civil(zone, *t).time().to_string())
                .collect();
            assert_eq!(
                local,
                ["03:30:00", "03:40:00"],
                "{zone}: moved past the gap"
            );
            let (y, m, d) = autumn;
            let c = spec(json!({"every": 600, "time_zone": zone,
                "times": [{"from": "00:30", "to": "03:30"}]}))
            .unwrap();
            let runs = between(&c, at(zone, y, m, d, 0, 0), at(zone, y, m, d + 1, 0, 0));
            // 3 civil hours that last 4 real ones: 24 runs, 10 min apart.
            assert_eq!(runs.len(), 24, "{zone}");
        }
    }

    #[test]
    fn month_ends_last_days_and_leap_days() {
        let noon = [json!({"from": "12:00", "to": "12:01"})];
        let last =
            spec(json!({"every": 3600, "days": {"month_days": ["last"]}, "times": noon})).unwrap();
        let runs = between(
            &last,
            at("UTC", 2027, 1, 1, 0, 0),
            at("UTC", 2029, 1, 1, 0, 0),
        );
        assert_eq!(runs.len(), 24);
        for t in &runs {
            let dt = civil("UTC", *t);
            assert_eq!(dt.day(), dt.date().days_in_month(), "{dt}");
        }
        assert!(
            runs.iter()
                .any(|t| civil("UTC", *t).to_string() == "2028-02-29T12:00:00")
        );
        let leap = spec(json!({"every": 3600, "times": noon,
            "days": {"month_days": [29], "months": ["feb"]}}))
        .unwrap();
        let runs = between(
            &leap,
            at("UTC", 2025, 1, 1, 0, 0),
            at("UTC", 2033, 1, 1, 0, 0),
        );
        let years: Vec<i16> = runs.iter().map(|t| civil("UTC", *t).year()).collect();
        assert_eq!(years, [2028, 2032]);
        let e =
            spec(json!({"every": 60, "days": {"month_days": [30], "months": [2]}})).unwrap_err();
        assert_eq!(e.key, "schedule_params/days");
    }

    #[test]
    fn nth_weekdays_and_every_nth_day() {
        let noon = [json!({"from": "12:00", "to": "12:01"})];
        let c = spec(
            json!({"every": 3600, "times": noon, "days": {"nth_weekdays": [
            {"n": 3, "weekday": "sun"}, {"n": -1, "weekday": "fri"}]}}),
        )
        .unwrap();
        let runs: Vec<String> = between(
            &c,
            at("UTC", 2026, 11, 1, 0, 0),
            at("UTC", 2027, 1, 1, 0, 0),
        )
        .iter()
        .map(|t| civil("UTC", *t).date().to_string())
        .collect();
        assert_eq!(
            runs,
            ["2026-11-15", "2026-11-27", "2026-12-20", "2026-12-25"]
        );
        let c = spec(json!({"every": 3600, "times": noon,
            "days": {"every_days": 3, "first_day": "2026-12-30"}}))
        .unwrap();
        let runs: Vec<String> = between(
            &c,
            at("UTC", 2026, 12, 1, 0, 0),
            at("UTC", 2027, 1, 10, 0, 0),
        )
        .iter()
        .map(|t| civil("UTC", *t).date().to_string())
        .collect();
        assert_eq!(
            runs,
            ["2026-12-30", "2027-01-02", "2027-01-05", "2027-01-08"]
        );
        // "Every 2nd day starting in 1 day", from a Monday.
        let c = spec(json!({"every": 3600, "times": noon,
            "days": {"every_days": 2, "starting_in_days": 1}}))
        .unwrap();
        let runs: Vec<String> = between(
            &c,
            at("UTC", 2026, 12, 7, 9, 0),
            at("UTC", 2026, 12, 13, 0, 0),
        )
        .iter()
        .map(|t| civil("UTC", *t).date().to_string())
        .collect();
        assert_eq!(runs, ["2026-12-08", "2026-12-10", "2026-12-12"]);
    }

    #[test]
    fn windows_cross_midnight() {
        let c = spec(json!({"every": 1800, "time_zone": "Europe/Rome",
            "days": {"weekdays": ["fri"]}, "times": [{"from": "22:00", "to": "02:00"}]}))
        .unwrap();
        let runs: Vec<String> = between(
            &c,
            at("Europe/Rome", 2026, 12, 11, 23, 10),
            at("Europe/Rome", 2026, 12, 13, 0, 0),
        )
        .iter()
        .map(|t| civil("Europe/Rome", *t).to_string())
        .collect();
        assert_eq!(
            runs,
            [
                "2026-12-11T23:30:00",
                "2026-12-12T00:00:00",
                "2026-12-12T00:30:00",
                "2026-12-12T01:00:00",
                "2026-12-12T01:30:00"
            ]
        );
    }

    #[test]
    fn nesting_three_deep() {
        // Every hour for 10 min; inside, every 2 min for 30 s; inside,
        // every 10 s: 5 windows of 3 runs an hour.
        let c = spec(json!({"every": 10, "nest": [
            {"every": 3600, "for": 600}, {"every": 120, "for": 30}]}))
        .unwrap();
        let runs = between(
            &c,
            at("UTC", 2026, 12, 7, 0, 0),
            at("UTC", 2026, 12, 8, 0, 0),
        );
        assert_eq!(runs.len(), 24 * 5 * 3);
        let first: Vec<String> = runs[..7]
            .iter()
            .map(|t| civil("UTC", *t).time().to_string())
            .collect();
        assert_eq!(
            first,
            [
                "00:00:00", "00:00:10", "00:00:20", "00:02:00", "00:02:10", "00:02:20", "00:04:00"
            ]
        );
    }

    #[test]
    fn late_collectors_skip_missed_runs_and_end_time_ends() {
        let c = spec(json!({"every": 60, "end_time": 1_796_700_000})).unwrap();
        let mut it = CalendarInstants::new(Arc::clone(&c), Timestamp(1_796_600_000_000_000));
        assert_eq!(it.next(), Some(Timestamp(1_796_600_040_000_000)));
        // 10.5 minutes later: the run a little late is taken.
        assert_eq!(
            it.next_after(Timestamp(1_796_600_670_000_000)),
            Some(Timestamp(1_796_600_640_000_000))
        );
        assert_eq!(it.next(), Some(Timestamp(1_796_600_700_000_000)));
        // The last run, at end_time, a second late; then none.
        assert_eq!(
            it.next_after(Timestamp(1_796_700_001_000_000)),
            Some(Timestamp(1_796_700_000_000_000))
        );
        assert_eq!(it.next_after(Timestamp(1_796_700_061_000_000)), None);
    }

    /// The README's example, through the configuration schema.
    #[test]
    fn the_readme_example_is_a_valid_configuration() {
        let probe = crate::probe::testing::probe_config(
            "cpu",
            &json!({
                "collection_schedule": "builtins.calendar",
                "schedule_params": {
                    "every": 10,
                    "time_zone": "Europe/Rome",
                    "days": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "months": ["jan", 12]},
                    "times": [{"from": "08:00", "to": "18:00"}],
                    "nest": [{"every": 900, "for": 60}]
                }
            }),
        )
        .unwrap();
        assert!(matches!(probe.schedule, ScheduleSpec::Calendar(_)));
        let e = crate::probe::testing::probe_config(
            "cpu",
            &json!({"collection_schedule": "builtins.calendar",
                "schedule_params": {"every": 10, "nest": [{"every": 60}]}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schedule_params/nest/0"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        for (params, key) in [
            (
                json!({"every": 10, "time_zone": "Mars/Olympus"}),
                "schedule_params/time_zone",
            ),
            (
                json!({"every": 10, "days": {"weekdays": ["funday"]}}),
                "schedule_params/days/weekdays/0",
            ),
            (
                json!({"every": 10, "days": {"month_days": [32]}}),
                "schedule_params/days/month_days/0",
            ),
            (
                json!({"every": 10, "days": {"nth_weekdays": [{"n": 6, "weekday": "mon"}]}}),
                "schedule_params/days/nth_weekdays/0",
            ),
            (
                json!({"every": 10, "times": [{"from": "25:00", "to": "02:00"}]}),
                "schedule_params/times/0",
            ),
            (
                json!({"every": 10, "nest": [{"every": 60, "for": 61}]}),
                "schedule_params/nest/0",
            ),
            (
                json!({"every": 10, "nest": [{"every": 60, "for": 30}, {"every": 40, "for": 5}]}),
                "schedule_params/nest/1",
            ),
            (
                json!({"every": 100, "nest": [{"every": 600, "for": 60}]}),
                "schedule_params/every",
            ),
            (
                json!({"every": 10, "days": {"every_days": 2, "first_day": "2026-02-30"}}),
                "schedule_params/days/first_day",
            ),
        ] {
            let e = spec(params.clone()).unwrap_err();
            assert_eq!(e.key, key, "{params}: {e:?}");
        }
    }
}
