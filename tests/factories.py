import factory

from accounts.models import Membership, User, Workspace

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(self, create, extracted, **kwargs):
        if create:
            self.save()

    @factory.post_generation
    def personal_workspace(self, create, extracted, **kwargs):
        """Like registration: every user owns a personal workspace (pass personal_workspace=False to skip)."""
        if create and extracted is not False:
            workspace = Workspace.objects.create(name=f"{self.email}'s workspace", is_personal=True, created_by=self)
            Membership.objects.create(workspace=workspace, user=self, role=Membership.Role.OWNER)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.VIEWER
