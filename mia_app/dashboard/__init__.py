"""The Gradio dashboard. It only reads what workers write (job store, run folders) and queues jobs;
attacks never run in its process."""
