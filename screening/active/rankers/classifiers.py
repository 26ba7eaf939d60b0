"""The classifiers a ranker refits at every retrain: scikit-learn estimators, registered by name with the defaults
that differ from scikit-learn's own."""

from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

from .registry import register_classifier

# random_state fixed: liblinear shuffles, so the same labels in the same order give the same scores
register_classifier("svm", LinearSVC, "linear SVM (scores: distance to the margin)", random_state=0)
register_classifier("lr", LogisticRegression, "logistic regression", max_iter=3000, random_state=0)
register_classifier("nb", ComplementNB, "complement naive Bayes")
