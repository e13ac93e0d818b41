"""Build the temporal development set (tests/data/temporal-dev.json) and the Reuters subset its
eval index is built from.

Every question was written by reading the Reuters stories; its answers are verbatim strings of its
stories, and its `support` is every story dated inside the meant window that holds an answer and
the question's key words (for "latest" questions the window starts after the fact last changed before `as_of`).
This script only checks that and fills `support` in; it writes no question of its own.

    python bench/temporal_devset.py ../shared/corpora/reuters21578/reuters21578.jsonl \
        tests/data/temporal-dev.json --subset /tmp/reuters-subset.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from datetime import date, datetime

# (question, as_of, answers, key words a supporting story holds, window start, window end, kind)
# The window is the one meant, written by hand; kind: latest, relative, explicit or none.
QUESTIONS = [
    # -- facts that change; "latest"/"current"/"now" ----------------------------------------
    ("What is Chemical Bank's latest prime rate?", "1987-04-05", ["7-3/4 pct"], ["Chemical", "prime"], None, "1987-04-05", "latest"),
    ("What is Chemical Bank's latest prime rate?", "1987-10-20T23:00:00", ["9-1/4 pct"], ["Chemical", "prime"], "1987-10-01", "1987-10-20", "latest"),
    ("What is ANZ's current Australian prime rate?", "1987-04-10", ["18 pct"], ["ANZ", "prime"], "1987-04-01", "1987-04-10", "latest"),
    ("What is ANZ's current Australian prime rate?", "1987-06-30", ["16.00 pct"], ["ANZ", "prime"], "1987-06-01", "1987-06-30", "latest"),
    ("What is Japan's current long-term prime rate?", "1987-03-25", ["5.5 pct"], ["long-term", "prime"], "1987-03-01", "1987-03-25", "latest"),
    ("What is Japan's current long-term prime rate?", "1987-04-30", ["5.2 pct"], ["long-term", "prime"], "1987-04-20", "1987-04-30", "latest"),
    ("What is General Partners' latest offer per GenCorp share?", "1987-03-20", ["100 dlr"], ["General Partners", "GenCorp"], "1987-03-18", "1987-03-20", "latest"),
    ("What is General Partners' latest offer per GenCorp share?", "1987-04-05", ["110 dlrs"], ["General Partners", "GenCorp"], "1987-04-03", "1987-04-05", "latest"),
    ("How many ships are still strike-bound in Brazil?", "1987-03-24T23:00:00", ["126"], ["seamen", "strike-bound"], "1987-03-24", "1987-03-24", "latest"),
    ("How many ships are still strike-bound in Brazil?", "1987-03-26", ["80"], ["seamen", "strike-bound"], "1987-03-25", "1987-03-26", "latest"),
    ("What is the OPEC output ceiling now?", "1987-03-12", ["15.8 mln"], ["OPEC", "ceiling"], "1987-03-01", "1987-03-12", "latest"),
    ("What is the OPEC output ceiling now?", "1987-06-30", ["16.6 mln"], ["OPEC", "ceiling"], "1987-06-01", "1987-06-30", "latest"),
    ("What is the Commonwealth Bank of Australia's most recent prime lending rate?", "1987-04-20", ["17.5 pct"], ["Commonwealth Bank", "prime"], "1987-04-13", "1987-04-20", "latest"),
    # -- relative phrases -----------------------------------------------------------------
    ("What did Chemical Bank raise its prime rate to last week?", "1987-04-08", ["7-3/4 pct"], ["Chemical", "prime"], "1987-03-30", "1987-04-05", "relative"),
    ("Which banks raised their prime rate to 7-3/4 pct yesterday?", "1987-04-01", ["Citibank and Chase Manhattan"], ["prime"], "1987-03-31", "1987-03-31", "relative"),
    ("What did the Reserve Bank of Australia cut the rediscount rate to two weeks ago?", "1987-04-08", ["17.00 pct"], ["rediscount"], "1987-03-23", "1987-03-29", "relative"),
    ("What did ANZ cut its prime rate to over the past week?", "1987-06-20", ["16.00 pct"], ["ANZ", "prime"], "1987-06-13", "1987-06-20", "relative"),
    ("What did Citibank lower its Australian prime rate to this week?", "1987-06-19", ["16 pct", "16.00 pct"], ["Citibank", "prime"], "1987-06-15", "1987-06-19", "relative"),
    ("How many Brazilian seamen were back at work yesterday?", "1987-03-25", ["14,000"], ["seamen"], "1987-03-24", "1987-03-24", "relative"),
    ("What salary rise did the Brazilian seamen agree with Lloyd Brasileiro over the past few days?", "1987-04-08", ["120 pct"], ["Lloyd Brasileiro"], "1987-04-05", "1987-04-08", "relative"),
    ("What did Hong Kong banks raise the prime rate to last week?", "1987-04-08", ["6.5 pct", "6-1/2 pct"], ["Hong"], "1987-03-30", "1987-04-05", "relative"),
    ("What did General Partners offer per GenCorp share earlier this month?", "1987-04-20", ["110 dlrs"], ["General Partners", "GenCorp"], "1987-04-01", "1987-04-19", "relative"),
    ("What did Texaco file for yesterday?", "1987-04-14", ["Chapter 11"], ["Texaco"], "1987-04-13", "1987-04-13", "relative"),
    ("What proposal did Carl Icahn withdraw today?", "1987-10-20T23:00:00", ["acquire the TWA"], ["Icahn"], "1987-10-20", "1987-10-20", "relative"),
    # -- explicit dates -------------------------------------------------------------------
    ("What was Citibank's prime rate at the end of March?", "1987-10-20", ["7-3/4 pct"], ["Citibank", "prime"], "1987-03-21", "1987-03-31", "explicit"),
    ("What was the OPEC output ceiling in March 1987?", "1987-10-20", ["15.8 mln"], ["OPEC", "ceiling"], "1987-03-01", "1987-03-31", "explicit"),
    ("What was Japan's long-term prime rate in April 1987?", "1987-10-20", ["5.2 pct"], ["long-term", "prime"], "1987-04-01", "1987-04-30", "explicit"),
    ("What did ANZ cut its prime rate to in June 1987?", "1987-10-20", ["16.00 pct"], ["ANZ", "prime"], "1987-06-01", "1987-06-30", "explicit"),
    ("What did the Commonwealth Bank cut its loan reference rate to in June?", "1987-10-20", ["15.75 pct"], ["Commonwealth Bank", "reference rate"], "1987-06-01", "1987-06-30", "explicit"),
    ("What pay increase were the Brazilian seamen seeking on March 5, 1987?", "1987-10-20", ["275 pct"], ["seamen"], "1987-03-05", "1987-03-05", "explicit"),
    ("How much per share did GenCorp offer in its buyback in April 1987?", "1987-10-20", ["130 dlrs"], ["GenCorp", "buy"], "1987-04-01", "1987-04-30", "explicit"),
    ("What tender offer per share did General Partners make for GenCorp on March 18, 1987?", "1987-10-20", ["100 dlr"], ["General Partners", "GenCorp"], "1987-03-18", "1987-03-18", "explicit"),
    ("Between April 1 and April 3, 1987, what did Hong Kong banks raise their prime rate to?", "1987-10-20", ["6.5 pct", "6-1/2 pct"], ["Hong"], "1987-04-01", "1987-04-03", "explicit"),
    ("Since June, what has Citibank cut its Australian prime rate to?", "1987-06-30", ["16 pct", "16.00 pct"], ["Citibank", "prime"], "1987-06-01", "1987-06-30", "explicit"),
    ("What did the Reserve Bank of Australia cut the rediscount rate to in Q1 1987?", "1987-10-20", ["17.00 pct"], ["rediscount"], "1987-01-01", "1987-03-31", "explicit"),
    ("What was the top accepted rate of discount at the UK Treasury bill tender on April 3, 1987?", "1987-10-20", ["9.5261 pct"], ["Treasury bill tender"], "1987-04-03", "1987-04-03", "explicit"),
    ("How many ships were strike-bound in Brazil on March 24, 1987?", "1987-10-20", ["126"], ["strike-bound"], "1987-03-24", "1987-03-24", "explicit"),
    # -- time-free controls ----------------------------------------------------------------
    ("What Los Angeles TV station did RKO General agree to sell to Walt Disney?", "1987-10-20", ["KHJ-TV"], ["Disney"], None, None, "none"),
    ("How much did MCA pay for WOR-TV?", "1987-10-20", ["387 mln dlrs"], ["WOR-TV"], None, None, "none"),
    ("What pay increase were the striking Brazilian seamen seeking?", "1987-10-20", ["275 pct"], ["seamen"], None, None, "none"),
    ("How much did Primerica pay for Smith Barney?", "1987-10-20", ["750 mln dlrs"], ["Smith Barney"], None, None, "none"),
    ("Which company agreed to buy General Tire from GenCorp?", "1987-10-20", ["Continental AG", "Continental"], ["General Tire"], None, None, "none"),
    ("Who did Japan's Liberal Democratic Party choose to be the next prime minister?", "1987-10-20", ["Noboru Takeshita", "Takeshita"], ["Liberal Democratic"], None, None, "none"),
    ("Where will GenCorp build its 50 mln dlr manufacturing facility?", "1987-10-20", ["Shelbyville"], ["GenCorp"], None, None, "none"),
    ("How many USAir shares did TWA sell?", "1987-10-20", ["four mln"], ["USAir"], None, None, "none"),
    ("How many ships had the Brazilian seamen's walkout idled according to Jorge Luis Leao Franco?", "1987-10-20", ["160 ships", "158 ships"], ["Leao Franco"], None, None, "none"),
]


def holds(story: dict, answers: list[str], keys: list[str]) -> bool:
    """The story holds an answer (spaces as in hard-wrapped wire copy aside) and every key word."""
    text = " ".join(f"{story['title']}\n{story['text']}".split())
    return (any(a in " ".join(story["text"].split()) for a in answers)
            and all(re.search(re.escape(k), text, re.IGNORECASE) for k in keys))


def day(value: str | None) -> date | None:
    return datetime.fromisoformat(value).date() if value else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--subset", help="also write the stories the eval index holds (JSONL)")
    parser.add_argument("--distractors", type=int, default=2500)
    args = parser.parse_args()
    with open(args.corpus) as lines:
        stories = [json.loads(line) for line in lines]
    dated = [s for s in stories if s.get("published_at")]
    items, problems = [], []
    for question, as_of, answers, keys, start, end, kind in QUESTIONS:
        lo, hi, asked = day(start), day(end), day(as_of)
        inside = [s for s in dated if holds(s, answers, keys) and (lo is None or day(s["published_at"]) >= lo)
                  and (hi is None or day(s["published_at"]) <= hi) and day(s["published_at"]) <= asked]
        if not inside:
            problems.append(f"no story supports {question!r} as of {as_of}")
        items.append({"question": question, "as_of": as_of, "answers": answers,
                      "support": [s["id"] for s in inside], "kind": kind})
    if problems:
        raise SystemExit("\n".join(problems))
    with open(args.out, "w") as out:
        json.dump(items, out, indent=1)
        out.write("\n")
    print(f"{len(items)} questions → {args.out}")
    if args.subset:
        # Every story on the questions' topics (the other versions of each fact are the point),
        # then random distractors.
        topics = re.compile(r"PRIME|RATE|OPEC|GENCORP|SEAMEN|TEXACO|TWA|STRIKE|TENDER", re.IGNORECASE)
        wanted = {s for item in items for s in item["support"]}
        keep = [s for s in stories if s["id"] in wanted or topics.search(s["title"])]
        rest = [s for s in stories if s not in keep]
        keep += random.Random(0).sample(rest, args.distractors)
        with open(args.subset, "w") as out:
            out.writelines(json.dumps(s) + "\n" for s in keep)
        print(f"{len(keep)} stories → {args.subset}")


if __name__ == "__main__":
    main()
