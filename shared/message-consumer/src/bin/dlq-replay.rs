//! `dlq-replay`: list the dead letters of a topic, or send them back to it.
//!
//! ```text
//! cargo run -p message-consumer --bin dlq-replay -- --topic order-events --list
//! cargo run -p message-consumer --bin dlq-replay -- --topic order-events --replay [--event-id <uuid>]
//! ```
//!
//! Reads `<topic>.dlq` (`--event-id` keeps one event's letters), prints each with its
//! `dlq-*` reason headers, and with `--replay` republishes it to the topic named in its
//! `dlq-original-topic` header (see `message_consumer::replay`). `KAFKA_BOOTSTRAP_SERVERS`
//! (default `127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094`) or `--bootstrap`.

// An operator's command: what it found and did goes to stdout.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use message_consumer::replay;
use rdkafka::producer::FutureProducer;
use uuid::Uuid;

const USAGE: &str = "usage: dlq-replay --topic <topic> (--list | --replay) [--event-id <uuid>] [--bootstrap <servers>]";

#[derive(Debug)]
struct Args {
    topic: String,
    replay: bool,
    event_id: Option<Uuid>,
    bootstrap: String,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut topic = None;
    let mut mode = None;
    let mut event_id = None;
    let mut bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094".to_owned());
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--topic" => topic = Some(value("--topic")?),
            "--list" => mode = Some(false),
            "--replay" => mode = Some(true),
            "--event-id" => {
                let raw = value("--event-id")?;
                event_id =
                    Some(Uuid::parse_str(&raw).map_err(|e| format!("--event-id {raw:?}: {e}"))?);
            }
            "--bootstrap" => bootstrap = value("--bootstrap")?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(Args {
        topic: topic.ok_or_else(|| format!("--topic is required\n{USAGE}"))?,
        replay: mode.ok_or_else(|| format!("--list or --replay is required\n{USAGE}"))?,
        event_id,
        bootstrap,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dlq-replay: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), replay::ReplayError> {
    let dlq = kafka_config::dead_letter_topic(&args.topic);
    let letters = replay::read_letters(&args.bootstrap, &dlq, args.event_id).await?;
    println!("{} dead letter(s) on {dlq}", letters.len());
    // Acks=all, idempotent: a replayed letter must not be lost on its way back.
    let producer: Option<FutureProducer> = if args.replay {
        Some(
            kafka_config::ProducerSettings::reliable(&args.bootstrap)
                .client_config()
                .create()
                .map_err(|e| replay::ReplayError::Publish {
                    topic: args.topic.clone(),
                    reason: e.to_string(),
                })?,
        )
    } else {
        None
    };
    for letter in &letters {
        println!("{}", replay::describe(letter));
        if let Some(producer) = &producer {
            let to = replay::replay(producer, letter).await?;
            println!("  replayed to {}[{}]@{}", to.topic, to.partition, to.offset);
        }
    }
    Ok(())
}
