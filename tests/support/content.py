"""The first ids the api tier's content gets (tests/api/conftest.py: distinct_ids): posts from 31, comments from 58,
members 7, 8 and 9, so that no id of one kind equals one of another and a mix-up cannot pass by coincidence."""

FIRST_POST_ID, FIRST_COMMENT_ID = 31, 58
