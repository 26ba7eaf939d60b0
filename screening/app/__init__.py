"""The browser app over a review folder (`run_screening.py app`): `folder` holds its logic, `ui` its Gradio page."""
