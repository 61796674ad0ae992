"""Raw corpora -> what the trainers read (NMT: preprocess.bible, preprocess.iwslt14)."""
