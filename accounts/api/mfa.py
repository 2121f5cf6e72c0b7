"""auth/mfa…: TOTP enrolment, turning MFA off, and the token endpoint's second step (accounts.mfa)."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import lockout, mfa
from accounts.throttling import AuthRateThrottle


class CodeRejectedError(exceptions.AuthenticationFailed):
    default_code = "mfa_code_rejected"


class ChallengeInvalidError(exceptions.AuthenticationFailed):
    default_code = "mfa_token_invalid"


class CodeLockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, error: lockout.LockedOut):
        super().__init__(error.messages[0])
        self.wait = error.retry_after  # DRF's exception handler turns it into Retry-After


class TotpEnrolmentSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32, for typing into an authenticator app.")
    otpauth_uri = serializers.CharField()
    qr_svg = serializers.CharField(help_text="The otpauth URI as a QR code, an SVG document.")


class CodeSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32, help_text="A 6-digit TOTP code.")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(), help_text="Shown this once: each works once instead of a TOTP code."
    )


class MfaDisableSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    code = serializers.CharField(max_length=32, help_text="A current TOTP code or an unused recovery code.")


class MfaTokenSerializer(serializers.Serializer):
    mfa_token = serializers.CharField(max_length=1000)
    code = serializers.CharField(max_length=32, help_text="A current TOTP code or an unused recovery code.")


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenOrMfaSerializer(serializers.Serializer):
    access = serializers.CharField(required=False, help_text="Absent when mfa_required.")
    refresh = serializers.CharField(required=False, help_text="Absent when mfa_required.")
    mfa_required = serializers.BooleanField(required=False)
    mfa_token = serializers.CharField(
        required=False, help_text="For POST auth/token/mfa with a code: valid for minutes, once."
    )


def _code_errors_as_api_errors(call):
    """Run `call`; a wrong code is a 401 and a lockout a 429, as for a wrong password."""
    try:
        return call()
    except lockout.LockedOut as error:
        raise CodeLockedOut(error) from error
    except mfa.CodeRejected as error:
        raise CodeRejectedError(error.messages[0]) from error
    except mfa.ChallengeInvalid as error:
        raise ChallengeInvalidError(str(error)) from error


class TotpEnrolmentView(APIView):
    refuses_api_keys = True

    @extend_schema(request=None, responses={201: TotpEnrolmentSerializer})
    def post(self, request):
        """Start enrolling an authenticator app: MFA is on once auth/mfa/totp/confirm gets a code of it."""
        enrolment = mfa.totp_enrolment_start(user=request.user)
        body = {"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri, "qr_svg": enrolment.qr_svg}
        return Response(TotpEnrolmentSerializer(body).data, status=status.HTTP_201_CREATED)


class TotpConfirmView(APIView):
    refuses_api_keys = True
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=CodeSerializer, responses={200: RecoveryCodesSerializer})
    def post(self, request):
        data = CodeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = _code_errors_as_api_errors(
            lambda: mfa.totp_enrolment_confirm(user=request.user, code=data.validated_data["code"], request=request)
        )
        return Response(RecoveryCodesSerializer({"recovery_codes": codes}).data)


class BodyOnDeleteSchema(AutoSchema):
    """drf-spectacular documents a request body for PUT, PATCH and POST only; DELETE auth/mfa has one."""

    def _get_request_body(self, direction="request"):
        method, self.method = self.method, "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = method


class MfaView(APIView):
    refuses_api_keys = True
    schema = BodyOnDeleteSchema()
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=MfaDisableSerializer, responses={204: None})
    def delete(self, request):
        """Turn MFA off: needs the password and a current code (or a recovery code)."""
        data = MfaDisableSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _code_errors_as_api_errors(lambda: mfa.mfa_disable(user=request.user, **data.validated_data, request=request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenMfaView(APIView):
    """POST auth/token/mfa: the second step of a login with MFA."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthRateThrottle]

    def get_authenticate_header(self, request) -> str:
        # Without an authentication class DRF would turn a wrong code's 401 into a 403.
        return 'Bearer realm="api"'

    @extend_schema(request=MfaTokenSerializer, responses={200: TokenPairSerializer})
    def post(self, request):
        data = MfaTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = _code_errors_as_api_errors(lambda: mfa.token_login_finish(**data.validated_data, request=request))
        return Response(TokenPairSerializer(tokens).data)
