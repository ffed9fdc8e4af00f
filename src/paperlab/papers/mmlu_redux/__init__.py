"""Are We Done with MMLU? (Gema, Leang, Hong, Devoto, Mancino, Saxena, He, Zhao, Du,
Madani, Barale, McHardy, Harris, Kaddour, van Krieken, Minervini; arXiv 2406.04127, 2024)."""
