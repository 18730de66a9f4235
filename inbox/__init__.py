"""cx-inbox: one customer-service queue for social media and review sites."""
