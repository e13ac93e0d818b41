// "Copy with sources": an answer as Markdown, then each source it cites with title, date, URL
// and the verbatim quote, so that it can be pasted into a story or a note and checked.

const quoted = (text) => text.split("\n").map((line) => `> ${line}`).join("\n");

// `turn` holds the question and the answer as the API gave it; `article(id)` fetches an article
// (for its date and URL, which citations do not carry).
export async function answerMarkdown(turn, article) {
  const a = turn.answer;
  const lines = [`**${turn.question}**`, ""];
  if (a.abstained) {
    lines.push(`The articles do not answer this. ${a.answer}`);
    return lines.join("\n") + "\n";
  }
  lines.push(a.answer, "", "Sources:", "");
  for (const c of a.citations) {
    const source = await article(c.article_id);
    const date = source.published_at ? source.published_at.slice(0, 10) : "undated";
    const where = source.url ? source.url : `article ${c.article_id}`;
    const from = source.source ? `, ${source.source}` : "";
    lines.push(`[${c.n}] ${c.title}${from}, ${date}, ${where}`, quoted(c.quote), "");
  }
  return lines.join("\n");
}

// A whole thread, question by question, each answer with its sources: a conversation to file or share.
export async function threadMarkdown(thread, article) {
  const title = thread.name || thread.turns[0]?.question || "Thread";
  const parts = [`# ${title}`, ""];
  for (const turn of thread.turns.filter((t) => t.answer)) parts.push(await answerMarkdown(turn, article));
  return parts.join("\n");
}
