"""The fine-tune ranker: an encoder with a screening head trained by the project's Trainer at every retrain."""

import tempfile

import numpy as np

from ...errors import ScreeningInputError
from ...text import TextOptions, prepare_texts
from .linear import Ranker
from .views import TEXT_COLUMNS, EncoderSettings


class FinetuneRanker(Ranker):
    """An encoder with a screening head (modeling/) trained on the labelled records at every retrain by the
    project's Trainer, classes balanced in the loss; practical on a GPU. Within one process (`simulate`) each round
    goes on from the previous round's weights; `screen` runs once per round, so each round starts from the encoder
    (--model_name_or_path) again."""

    def __init__(self, epochs=2.0, learning_rate=5e-5, batch_size=16):
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size

    def prepare(self, frame, encoder=None, seed=0):
        from transformers import AutoTokenizer

        from ...tokenization import tokenize_texts

        encoder = encoder or EncoderSettings()
        if not encoder.model_name_or_path:
            raise ScreeningInputError("--ranker finetune needs --model_name_or_path (an encoder checkpoint)")
        self.encoder_, self.seed_, self.model_ = encoder, seed, None
        self.tokenizer_ = AutoTokenizer.from_pretrained(encoder.model_name_or_path)
        texts = prepare_texts(frame, TEXT_COLUMNS, self.tokenizer_.sep_token or "|", TextOptions())
        limit = min(encoder.max_seq_length, self.tokenizer_.model_max_length)
        self.dataset_ = tokenize_texts(texts, None, self.tokenizer_, limit)
        return self

    def fit_score(self, rows, labels):
        import torch
        from transformers import TrainingArguments, set_seed

        from modeling import ScreeningForSequenceClassification

        from ...metrics import sigmoid
        from ...trainer import FastPathArguments, build_trainer

        if self.model_ is None:
            set_seed(self.seed_)  # the new head's initial weights
            self.model_ = ScreeningForSequenceClassification.from_pretrained(
                self.encoder_.model_name_or_path, loss_type="weighted_bce", pos_weight=1.0
            )
        positives = max(int(labels.sum()), 1)
        self.model_.config.pos_weight = float((labels.size - positives) / positives)  # balanced, read at forward
        train = self.dataset_.select(rows).add_column("labels", np.asarray(labels, dtype=np.float32).tolist())
        with tempfile.TemporaryDirectory() as out:
            training_args = TrainingArguments(
                output_dir=out,
                num_train_epochs=self.epochs,
                learning_rate=self.learning_rate,
                per_device_train_batch_size=self.batch_size,
                per_device_eval_batch_size=64,
                save_strategy="no",
                report_to=[],
                seed=self.seed_,
                disable_tqdm=True,
                dataloader_pin_memory=torch.accelerator.is_available(),  # pinning needs an accelerator
            )
            fast_path = FastPathArguments(prediction_precision=self.encoder_.precision)
            trainer = build_trainer(self.model_, self.tokenizer_, training_args, fast_path, train)
            trainer.train()
            logits = trainer.predict(self.dataset_).predictions
        return sigmoid(logits)
