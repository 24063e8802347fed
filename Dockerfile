FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini main.py ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir .
RUN mkdir -p /app/logs /app/data
ENTRYPOINT ["python", "main.py"]
CMD ["--automate"]
