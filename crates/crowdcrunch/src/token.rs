//! `crowdcrunch token`: a token signed with the key that `dev` keeps in its data dir, for a
//! customer, a member of staff or a peer service, printed alone on stdout (for
//! `TOKEN=$(crowdcrunch token …)`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use crowdcrunch_runtime::auth::{Grant, SigningKey};

use crate::dev::dev_token_rules;

/// Flags of `crowdcrunch token`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("whom").required(true).args(["customer", "staff", "service"])))]
pub struct TokenArgs {
    /// The data dir of `crowdcrunch dev`, which holds the signing key.
    #[arg(long, default_value = "./data", value_name = "DIR")]
    data_dir: PathBuf,
    /// A token for this customer id.
    #[arg(long, value_name = "CUSTOMER_ID")]
    customer: Option<String>,
    /// A token for this member of staff.
    #[arg(long, value_name = "NAME")]
    staff: Option<String>,
    /// A token for this peer service (its own identity on its calls, e.g. `orders`).
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// Prints the token.
#[expect(clippy::print_stdout, reason = "the token is the command's output")]
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let grant = match (&args.customer, &args.staff, &args.service) {
        (Some(customer), _, _) => Grant::Customer(customer.clone()),
        (_, Some(staff), _) => Grant::Staff(staff.clone()),
        (_, _, Some(service)) => Grant::Service(service.clone()),
        (None, None, None) => anyhow::bail!("say whom the token is for"),
    };
    let key = SigningKey::load(&args.data_dir)?;
    let token = key
        .mint(&dev_token_rules(), &grant, args.ttl)
        .context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}
