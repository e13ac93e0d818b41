"""Shared text tools, one of each: words, stems, key terms and stop words (`terms`), the `[n]`
citation markers (`markers`), sentences and token counts (`sentences`, `tokens`), and
near-duplicate detection (`dedup`)."""
