//! Venue configuration: instruments, accounts with their risk limits, and
//! which FIX session (CompID) trades for which account. Loaded from TOML and
//! validated here; decimal <-> tick/lot conversion helpers live here too,
//! because this is the only place the engine meets decimals.

use std::collections::HashMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::types::{AccountId, InstrumentId, Lots, StpMode, Ticks};

/// Money amounts (notional, credit, P&L) are integers of this many units per currency unit.
pub const CASH_UNITS_PER_CURRENCY: i64 = 1_000_000;
/// The most instruments a venue may list (bounds per-account tables).
pub const MAX_INSTRUMENTS: usize = 4096;
/// The most accounts a venue may have.
pub const MAX_ACCOUNTS: usize = 65_536;

/// Why a venue config or a price/quantity conversion was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read venue config {path}: {message}")]
    Io {
        /// Path that failed.
        path: String,
        /// OS error text.
        message: String,
    },
    /// The TOML did not parse or did not match the schema.
    #[error("venue config is not valid TOML for the schema: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("venue config: {0}")]
    Invalid(String),
}

/// Why a decimal price or quantity cannot be expressed in ticks or lots.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ConvertError {
    /// The price is not a whole number of ticks.
    #[error("price is not a multiple of the tick size")]
    OffTick,
    /// The quantity is not a whole number of lots.
    #[error("quantity is not a multiple of the lot size")]
    OffLot,
    /// The value does not fit the engine's integers.
    #[error("value out of range")]
    OutOfRange,
    /// A quantity must be positive.
    #[error("quantity must be positive")]
    NotPositive,
}

/// The whole venue config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VenueConfig {
    /// Engine settings.
    #[serde(default)]
    pub engine: EngineSettings,
    /// Listed instruments; the index is the `InstrumentId`.
    pub instruments: Vec<InstrumentConfig>,
    /// Accounts; the index is the `AccountId`.
    pub accounts: Vec<AccountConfig>,
    /// FIX session -> account mapping.
    #[serde(default)]
    pub sessions: Vec<SessionAccount>,
}

/// Engine-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Write a snapshot of the engine state every this many journaled commands (0 = never).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// The most orders (resting + stop) the engine holds at once; new orders beyond are rejected.
    #[serde(default = "default_max_orders")]
    pub max_orders: u32,
    /// Orders (working plus recently finished) the order indexes are sized
    /// for at start. Beyond it they grow, and growing an index of 100 000s
    /// of orders stalls the core for milliseconds each time it doubles.
    #[serde(default = "default_order_capacity")]
    pub order_capacity: u32,
}

fn default_snapshot_every() -> u64 {
    100_000
}
fn default_max_orders() -> u32 {
    4_000_000
}
fn default_order_capacity() -> u32 {
    100_000
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            snapshot_every: default_snapshot_every(),
            max_orders: default_max_orders(),
            order_capacity: default_order_capacity(),
        }
    }
}

/// One listed instrument.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    /// Symbol (FIX tag 55).
    pub symbol: String,
    /// Minimum price increment.
    pub tick_size: Decimal,
    /// Quantity increment (FIX quantities are multiples of this).
    #[serde(default = "one")]
    pub lot_size: Decimal,
    /// Allowed distance of a price from the reference price, in percent (none = no band).
    #[serde(default)]
    pub price_band_pct: Option<Decimal>,
    /// Reference price for the band; without one, the last trade price is used once there is one.
    #[serde(default)]
    pub reference_price: Option<Decimal>,
}

fn one() -> Decimal {
    Decimal::ONE
}

/// One trading account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Account name (FIX tag 1).
    pub name: String,
    /// Pre-trade limits.
    pub limits: AccountLimits,
    /// Self-trade prevention mode.
    #[serde(default)]
    pub self_trade: StpMode,
    /// Start with the kill switch on.
    #[serde(default)]
    pub blocked: bool,
}

/// Pre-trade risk limits of an account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountLimits {
    /// Largest quantity of one order (in FIX quantity units).
    pub max_order_qty: Decimal,
    /// Largest price x quantity of one order, in currency.
    pub max_order_notional: Decimal,
    /// Most working orders (resting and stop) at once.
    pub max_open_orders: u32,
    /// Open buy notional plus position cost may not exceed this, in currency.
    pub credit_limit: Decimal,
    /// Largest absolute position per instrument, counting open orders (FIX quantity units).
    pub max_position: Decimal,
}

/// Maps a FIX session's counterparty CompID to an account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionAccount {
    /// The client's SenderCompID.
    pub comp_id: String,
    /// Account name it trades for.
    pub account: String,
}

impl VenueConfig {
    /// Parses and validates a venue config.
    pub fn from_toml_str(text: &str) -> Result<VenueConfig, ConfigError> {
        let cfg: VenueConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a venue config file.
    pub fn load(path: impl AsRef<Path>) -> Result<VenueConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Checks ranges and cross references; names the offending entry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.instruments.is_empty() || self.instruments.len() > MAX_INSTRUMENTS {
            return bad(format!("need 1..={MAX_INSTRUMENTS} instruments"));
        }
        if self.accounts.is_empty() || self.accounts.len() > MAX_ACCOUNTS {
            return bad(format!("need 1..={MAX_ACCOUNTS} accounts"));
        }
        let mut seen = HashMap::new();
        for (i, ins) in self.instruments.iter().enumerate() {
            if seen.insert(ins.symbol.as_str(), i).is_some() {
                return bad(format!("instrument {} listed twice", ins.symbol));
            }
            InstrumentSpec::from_config(ins)?;
        }
        let mut seen = HashMap::new();
        for (i, acc) in self.accounts.iter().enumerate() {
            if seen.insert(acc.name.as_str(), i).is_some() {
                return bad(format!("account {} listed twice", acc.name));
            }
            for ins in &self.instruments {
                AccountSpec::from_config(acc, &InstrumentSpec::from_config(ins)?)?;
            }
        }
        let mut comp_ids = HashMap::new();
        for s in &self.sessions {
            if !seen.contains_key(s.account.as_str()) {
                return bad(format!(
                    "session {} maps to unknown account {}",
                    s.comp_id, s.account
                ));
            }
            if comp_ids.insert(s.comp_id.as_str(), ()).is_some() {
                return bad(format!("session {} mapped twice", s.comp_id));
            }
        }
        Ok(())
    }

    /// Id of the instrument with this symbol.
    pub fn instrument_id(&self, symbol: &str) -> Option<InstrumentId> {
        self.instruments
            .iter()
            .position(|i| i.symbol == symbol)
            .map(|i| i as InstrumentId)
    }

    /// Id of the account with this name.
    pub fn account_id(&self, name: &str) -> Option<AccountId> {
        self.accounts
            .iter()
            .position(|a| a.name == name)
            .map(|i| i as AccountId)
    }

    /// Account a FIX session (by the client's CompID) trades for.
    pub fn account_for_session(&self, comp_id: &str) -> Option<AccountId> {
        let s = self.sessions.iter().find(|s| s.comp_id == comp_id)?;
        self.account_id(&s.account)
    }

    /// Tick/lot conversion and band data for an instrument.
    pub fn instrument_spec(&self, id: InstrumentId) -> Option<InstrumentSpec> {
        InstrumentSpec::from_config(self.instruments.get(id as usize)?).ok()
    }
}

/// An instrument compiled to integers: what the engine and the FIX glue use to convert.
#[derive(Debug, Clone, PartialEq)]
pub struct InstrumentSpec {
    /// Minimum price increment.
    pub tick_size: Decimal,
    /// Quantity per lot.
    pub lot_size: Decimal,
    /// Band half-width in parts per million of the reference, if any.
    pub band_ppm: Option<i64>,
    /// Reference price in ticks, if any.
    pub reference_ticks: Option<Ticks>,
    /// Cash units (1e-6 currency) per tick x lot; exact by validation.
    pub cash_per_tick_lot: i64,
}

impl InstrumentSpec {
    /// Compiles and checks one instrument.
    pub fn from_config(ins: &InstrumentConfig) -> Result<InstrumentSpec, ConfigError> {
        let err = |m: &str| ConfigError::Invalid(format!("instrument {}: {m}", ins.symbol));
        let bad = |m: &str| Err(err(m));
        if ins.symbol.is_empty() {
            return Err(ConfigError::Invalid("instrument with empty symbol".into()));
        }
        if ins.tick_size <= Decimal::ZERO {
            return bad("tick_size must be positive");
        }
        if ins.lot_size <= Decimal::ZERO {
            return bad("lot_size must be positive");
        }
        if let Some(b) = ins.price_band_pct {
            if b <= Decimal::ZERO || b >= Decimal::from(100) {
                return bad("price_band_pct must be in (0, 100)");
            }
        }
        let cash = ins.tick_size * ins.lot_size * Decimal::from(CASH_UNITS_PER_CURRENCY);
        if cash.fract() != Decimal::ZERO {
            return bad("tick_size x lot_size must be a multiple of 0.000001");
        }
        let cash_per_tick_lot =
            i64::try_from(cash).map_err(|_| err("tick_size x lot_size too large"))?;
        let band_ppm = match ins.price_band_pct {
            None => None,
            Some(b) => {
                let ppm = b * Decimal::from(10_000);
                if ppm.fract() != Decimal::ZERO {
                    return bad("price_band_pct may have at most 4 decimals");
                }
                Some(i64::try_from(ppm).map_err(|_| err("price_band_pct out of range"))?)
            }
        };
        let mut spec = InstrumentSpec {
            tick_size: ins.tick_size,
            lot_size: ins.lot_size,
            band_ppm,
            reference_ticks: None,
            cash_per_tick_lot,
        };
        if let Some(r) = ins.reference_price {
            match spec.price_to_ticks(r) {
                Ok(t) if t > 0 => spec.reference_ticks = Some(t),
                _ => return bad("reference_price must be positive and on the tick grid"),
            }
        }
        Ok(spec)
    }

    /// Decimal price -> ticks; error if not on the tick grid.
    pub fn price_to_ticks(&self, price: Decimal) -> Result<Ticks, ConvertError> {
        price_to_ticks(price, self.tick_size)
    }
    /// Ticks -> decimal price.
    pub fn ticks_to_price(&self, ticks: Ticks) -> Decimal {
        ticks_to_price(ticks, self.tick_size)
    }
    /// Decimal quantity -> lots; error if not a positive multiple of the lot size.
    pub fn qty_to_lots(&self, qty: Decimal) -> Result<Lots, ConvertError> {
        qty_to_lots(qty, self.lot_size)
    }
    /// Lots -> decimal quantity.
    pub fn lots_to_qty(&self, lots: Lots) -> Decimal {
        Decimal::from(lots) * self.lot_size
    }
    /// Price band `[low, high]` in ticks around a reference.
    pub fn band_around(&self, reference: Ticks) -> Option<(Ticks, Ticks)> {
        let ppm = self.band_ppm? as i128;
        let r = reference as i128;
        let lo = (r * (1_000_000 - ppm) + 999_999) / 1_000_000; // ceil: r > 0, ppm < 1e6
        let hi = (r * (1_000_000 + ppm)) / 1_000_000;
        Some((lo.max(1) as i64, hi.min(i64::MAX as i128) as i64))
    }
    /// Cash units (1e-6 currency) -> decimal currency.
    pub fn cash_to_decimal(cash: i64) -> Decimal {
        Decimal::new(cash, 6)
    }
}

/// Decimal price -> ticks for a tick size; error if off the grid or out of range.
pub fn price_to_ticks(price: Decimal, tick_size: Decimal) -> Result<Ticks, ConvertError> {
    let t = price
        .checked_div(tick_size)
        .ok_or(ConvertError::OutOfRange)?;
    if t.fract() != Decimal::ZERO {
        return Err(ConvertError::OffTick);
    }
    i64::try_from(t).map_err(|_| ConvertError::OutOfRange)
}

/// Ticks -> decimal price for a tick size.
pub fn ticks_to_price(ticks: Ticks, tick_size: Decimal) -> Decimal {
    (Decimal::from(ticks) * tick_size).normalize()
}

/// Decimal quantity -> lots for a lot size; error if not a positive whole number of lots.
pub fn qty_to_lots(qty: Decimal, lot_size: Decimal) -> Result<Lots, ConvertError> {
    if qty <= Decimal::ZERO {
        return Err(ConvertError::NotPositive);
    }
    let l = qty.checked_div(lot_size).ok_or(ConvertError::OutOfRange)?;
    if l.fract() != Decimal::ZERO {
        return Err(ConvertError::OffLot);
    }
    u64::try_from(l).map_err(|_| ConvertError::OutOfRange)
}

/// Currency amount -> cash units, refusing negatives and overflow.
fn cash_units(v: Decimal, what: &str, who: &str) -> Result<i64, ConfigError> {
    let c = v
        .checked_mul(Decimal::from(CASH_UNITS_PER_CURRENCY))
        .and_then(|c| i64::try_from(c.trunc()).ok());
    match c {
        Some(c) if c >= 0 => Ok(c),
        _ => Err(ConfigError::Invalid(format!(
            "account {who}: {what} must be between 0 and 9e12"
        ))),
    }
}

/// An account's limits compiled to integers for one instrument's lot size.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountSpec {
    pub max_order_lots: Lots,
    pub max_order_notional_cash: i64,
    pub max_open_orders: u32,
    pub credit_limit_cash: i64,
    pub max_position_lots: Lots,
}

impl AccountSpec {
    pub(crate) fn from_config(
        acc: &AccountConfig,
        ins: &InstrumentSpec,
    ) -> Result<AccountSpec, ConfigError> {
        let lim = &acc.limits;
        let lots = |q: Decimal, what: &str| -> Result<Lots, ConfigError> {
            if q < Decimal::ZERO {
                return Err(ConfigError::Invalid(format!(
                    "account {}: {what} must not be negative",
                    acc.name
                )));
            }
            // Limits round down to whole lots: a limit never allows more than configured.
            Ok(u64::try_from((q / ins.lot_size).trunc()).unwrap_or(u64::MAX >> 2))
        };
        Ok(AccountSpec {
            max_order_lots: lots(lim.max_order_qty, "max_order_qty")?,
            max_order_notional_cash: cash_units(
                lim.max_order_notional,
                "max_order_notional",
                &acc.name,
            )?,
            max_open_orders: lim.max_open_orders,
            credit_limit_cash: cash_units(lim.credit_limit, "credit_limit", &acc.name)?,
            max_position_lots: lots(lim.max_position, "max_position")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    const DEFAULT: &str = include_str!("../../sessions/venue.toml");

    #[test]
    fn default_venue_file_loads() {
        let cfg = VenueConfig::from_toml_str(DEFAULT).unwrap();
        assert_eq!(cfg.instrument_id("AAPL"), Some(0));
        assert_eq!(cfg.instrument_id("MSFT"), Some(1));
        assert_eq!(cfg.account_for_session("CLIENT1"), cfg.account_id("ACC1"));
        assert_eq!(cfg.account_for_session("CLIENT2"), cfg.account_id("ACC2"));
        let aapl = cfg.instrument_spec(0).unwrap();
        assert_eq!(aapl.reference_ticks, Some(15_000));
        assert_eq!(aapl.band_around(15_000), Some((12_000, 18_000)));
        let msft = cfg.instrument_spec(1).unwrap();
        assert_eq!(msft.reference_ticks, Some(40_000));
    }

    #[test]
    fn price_conversion_rejects_off_grid() {
        assert_eq!(price_to_ticks(d("150.01"), d("0.01")), Ok(15_001));
        assert_eq!(
            price_to_ticks(d("150.015"), d("0.01")),
            Err(ConvertError::OffTick)
        );
        assert_eq!(price_to_ticks(d("0.25"), d("0.05")), Ok(5));
        assert_eq!(ticks_to_price(15_001, d("0.01")), d("150.01"));
        assert_eq!(qty_to_lots(d("300"), d("100")), Ok(3));
        assert_eq!(qty_to_lots(d("250"), d("100")), Err(ConvertError::OffLot));
        assert_eq!(qty_to_lots(d("0"), d("1")), Err(ConvertError::NotPositive));
    }

    #[test]
    fn errors_name_the_problem() {
        let dup = DEFAULT.replace("symbol = \"MSFT\"", "symbol = \"AAPL\"");
        let e = VenueConfig::from_toml_str(&dup).unwrap_err();
        assert!(e.to_string().contains("AAPL listed twice"), "{e}");
        let bad_ref = DEFAULT.replace(
            "reference_price = \"150.00\"",
            "reference_price = \"150.005\"",
        );
        let e = VenueConfig::from_toml_str(&bad_ref).unwrap_err();
        assert!(e.to_string().contains("instrument AAPL"), "{e}");
        let e = VenueConfig::from_toml_str("instruments = 3").unwrap_err();
        assert!(matches!(e, ConfigError::Parse(_)));
        let e = VenueConfig::load("/nonexistent/venue.toml").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/venue.toml"), "{e}");
    }
}
