"""Question answering over news articles, with citations checked against the article text."""

import os

# NumPy's OpenBLAS on one thread, unless the user says otherwise (set before NumPy loads it). Our
# products are small (a question's word pieces against a few hundred others) and run in server
# threads side by side, where waking a second BLAS thread cost more than the product: 7.3 ms
# against 0.2 ms for 10×384 @ 384×800 on 2 cores, and it took a core from the query encoder.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
